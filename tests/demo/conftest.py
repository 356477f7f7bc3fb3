"""A whole system for the demo tests: its own embedded Redis with JSON and the
three services as real processes, one per test module."""

from __future__ import annotations

import pytest

from common.embedded import EmbeddedRedis, free_port
from tests.harness import System

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
