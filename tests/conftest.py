"""Fixtures: one real embedded Redis with JSON for the session, flushed per test."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from common.embedded import EmbeddedRedis, free_port
from common.redisconn import create_redis
from common.scripts import load as load_functions
from common.settings import Settings
from tests.internal import INTERNAL_TOKEN

@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """The embedded default, or the server named by TEST_REDIS_URL."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis"), free_port()).start()
    load_functions(server.url)  # the admin's part (common/scripts.py); FLUSHALL keeps them
    yield server.url
    server.stop()

@pytest.fixture
async def redis(redis_server):
    client = create_redis(redis_server)
    await client.flushall()
    yield client
    await client.aclose()

@pytest.fixture
def settings(redis_server) -> Settings:
    """Settings for an app under test: short timers, the test server."""
    return replace(
        Settings.from_env("test", env={}),
        redis_url=redis_server,
        claim_idle_ms=200,
        sweep_interval_s=0.05,
        internal_token=INTERNAL_TOKEN,
    )

@pytest.fixture
def log_dir(tmp_path) -> Path:
    return tmp_path
