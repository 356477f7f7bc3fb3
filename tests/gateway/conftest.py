"""The gateway app under test: the real factory on the real test Redis.

Upstreams point at ports where nothing listens unless a test starts a real
server there: routes that need trip_service or driver_service are covered
end to end (tests/e2e); here they show how the gateway behaves when the
services are down.
"""

from __future__ import annotations

import pytest

from common.embedded import free_port
from gateway.app import create_app
from gateway.config import GatewaySettings
from tests.helpers.gateway import OPS_PASSWORD
from tests.helpers.settings import service_settings


@pytest.fixture
def gw_settings(redis_server) -> GatewaySettings:
    return service_settings(
        GatewaySettings,
        redis_server,
        trip_service_url=f"http://127.0.0.1:{free_port()}",
        driver_service_url=f"http://127.0.0.1:{free_port()}",
        upstream_timeout_s=0.5,
        ops_user_name="ops",
        ops_password=OPS_PASSWORD,
        rate_limit_per_token=0,
        login_failures_limit=3,
        # Cheaper argon2 than production: many sign-ups per test run.
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
def make_client(aiohttp_client, redis):
    """Build a client for an app with the given settings (the Redis is flushed first)."""

    async def make(settings: GatewaySettings):
        return await aiohttp_client(create_app(settings))

    return make


@pytest.fixture
async def client(make_client, gw_settings):
    return await make_client(gw_settings)
