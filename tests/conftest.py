"""Fixtures: one real embedded Redis with JSON for the session, flushed per test."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import pytest

from common.embedded import EmbeddedRedis, free_port
from common.embedded_pg import EmbeddedPostgres
from common.redisconn import create_redis
from common.scripts import load as load_functions

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


@pytest.fixture(scope="session")
def postgres_server():
    """The embedded PostgreSQL of the cold store, started on first use. Its
    folder is searchable by all (PostgreSQL runs as `nobody` under root),
    the data folder itself is the server's alone (0700)."""
    base = Path(tempfile.mkdtemp(prefix="ridehail-pg-"))
    base.chmod(0o711)
    server = EmbeddedPostgres(base / "data", free_port()).start()
    yield server
    server.stop()
    # The data folder belongs to the server's user; root removes it.
    import shutil

    shutil.rmtree(base, ignore_errors=True)


async def _truncate(url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        exists = await conn.fetchval("SELECT to_regclass('trips') IS NOT NULL")
        if exists:
            await conn.execute("TRUNCATE trips, trip_events")
    finally:
        await conn.close()


@pytest.fixture
async def database_url(postgres_server) -> str:
    """The cold store's URL, its tables emptied (the schema stays)."""
    await _truncate(postgres_server.url)
    return postgres_server.url


@pytest.fixture
async def redis(redis_server):
    client = create_redis(redis_server)
    await client.flushall()
    yield client
    await client.aclose()

@pytest.fixture
def log_dir(tmp_path) -> Path:
    return tmp_path


@pytest.fixture
def rng(request) -> random.Random:
    """The random draws of a test, seeded: the seed is printed (shown when the
    test fails) and kept in the report's user properties; TEST_SEED=<seed>
    repeats the same draws (the machine's timing stays its own)."""
    seed = int(os.environ.get("TEST_SEED") or random.SystemRandom().randrange(2**32))
    request.node.user_properties.append(("seed", seed))
    print(f"random seed {seed} (TEST_SEED={seed} repeats these draws)")
    return random.Random(seed)

