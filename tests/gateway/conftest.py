"""The gateway app under test: the real factory on the real test Redis.

Upstreams point at ports where nothing listens unless a test starts a real
server there: routes that need trip_service or driver_service are covered
end to end (tests/e2e); here they show how the gateway behaves when the
services are down.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from common.embedded import free_port
from gateway.app import create_app
from gateway.config import GatewayConfig

PASSWORD = "correct horse battery"


@pytest.fixture
def gw_config() -> GatewayConfig:
    # Cheaper argon2 than production: many sign-ups per test run.
    return GatewayConfig(
        argon2_time_cost=1,
        argon2_memory_kib=8 * 1024,
        breaker_failures=3,
        breaker_cooldown_s=0.3,
        upstream_backoff_s=0.01,
        idempotency_wait_s=2.0,
        # Short blocks: an app stops once its stream readers' XREAD returns.
        stream_block_ms=100,
    )


@pytest.fixture
def gw_settings(settings):
    return replace(
        settings,
        service="gateway",
        trip_service_url=f"http://127.0.0.1:{free_port()}",
        driver_service_url=f"http://127.0.0.1:{free_port()}",
        upstream_timeout_s=0.5,
        ops_user_name="ops",
        ops_password=OPS_PASSWORD,
        rate_limit_per_token=0,
        login_failures_limit=3,
    )


@pytest.fixture
def make_client(aiohttp_client, redis):
    """Build a client for an app with the given settings (the Redis is flushed first)."""

    async def make(settings, config):
        return await aiohttp_client(create_app(settings, config))

    return make


@pytest.fixture
async def client(make_client, gw_settings, gw_config):
    return await make_client(gw_settings, gw_config)


def rider_body(user_name: str, **overrides) -> dict:
    body = {
        "user_name": user_name,
        "password": PASSWORD,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": f"{user_name}@example.com",
        "age": 36,
        "bio": "Analyst",
    }
    body.update(overrides)
    return body


async def sign_up_and_login(client, user_name: str) -> dict:
    resp = await client.post("/v1/riders", json=rider_body(user_name))
    assert resp.status == 201, await resp.text()
    resp = await client.post("/v1/sessions", json={"user_name": user_name, "password": PASSWORD})
    assert resp.status == 201, await resp.text()
    return await resp.json()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


OPS_PASSWORD = "ops-gateway-tests-1"


async def ops_headers(client) -> dict:
    """An ops session's headers: /metrics and the details of /readyz are for the ops role."""
    resp = await client.post("/v1/sessions", json={"user_name": "ops", "password": OPS_PASSWORD})
    assert resp.status == 201, await resp.text()
    return bearer((await resp.json())["token"])
