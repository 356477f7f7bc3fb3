"""A whole system for the demo tests: its own embedded Redis with JSON and the
three services as real processes, one per test module."""

from __future__ import annotations

import json
import urllib.request

import pytest

from common.embedded import EmbeddedRedis, free_port
from tests.harness import System

OPS = {"user_name": "ops", "password": "ops-password-for-tests"}

# Short timers so that a run of a few seconds goes through every state.
DEMO_ENV = {
    "OFFER_TIMEOUT_S": "5",
    "TRIP_EXPIRY_S": "60",
    "RATE_LIMIT_PER_TOKEN": "0",
}


@pytest.fixture(scope="module")
def demo_system(tmp_path_factory):
    base = tmp_path_factory.mktemp("demo")
    redis = EmbeddedRedis(base / "redis", free_port()).start()
    system = System(redis.url, base, env=DEMO_ENV)
    try:
        system.start()
        yield system
    finally:
        system.stop()
        redis.stop()


def http_json(method: str, url: str, body: dict | None = None, token: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as resp:
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else None)


def ops_token(gateway_url: str, password: str = OPS["password"]) -> str:
    credentials = {"user_name": OPS["user_name"], "password": password}
    status, body = http_json("POST", f"{gateway_url}/v1/sessions", credentials)
    assert status == 201 and body["role"] == "ops"
    return body["token"]
