"""The embedded server: JSON required, acknowledged writes survive kill -9."""

from __future__ import annotations

import subprocess
import sys

import pytest
import redis as redis_sync

from tests.internal import INTERNAL_TOKEN
from common.embedded import EmbeddedRedis, free_port
from common.redisconn import JsonModuleMissing, check_json, create_redis
from tests.harness import ROOT


@pytest.fixture
def plain_server(tmp_path):
    """A server started without --loadmodule: no JSON commands."""
    server = EmbeddedRedis(tmp_path / "plain", free_port(), with_json=False).start()
    yield server
    server.stop()


async def test_a_server_without_json_is_refused_with_a_clear_message(plain_server):
    client = create_redis(plain_server.url)
    try:
        with pytest.raises(JsonModuleMissing) as info:
            await check_json(client, plain_server.url)
    finally:
        await client.aclose()
    message = str(info.value)
    for alternative in ("Redis 8", "Redis Stack", "Valkey", "MemoryDB"):
        assert alternative in message


@pytest.mark.parametrize("module", ["trip_service", "driver_service", "gateway"])
def test_each_service_stops_at_start_when_json_is_missing(plain_server, module):
    env = {"REDIS_URL": plain_server.url, "PORT": str(free_port()), "PATH": "/usr/bin:/bin",
           "INTERNAL_TOKEN": INTERNAL_TOKEN}
    proc = subprocess.run(
        [sys.executable, "-m", module], cwd=ROOT, env=env, capture_output=True, timeout=30
    )
    assert proc.returncode != 0
    assert b"has no JSON commands" in proc.stderr
    assert b"Redis 8" in proc.stderr


async def test_the_json_check_passes_on_the_embedded_default(redis, redis_server):
    await check_json(redis, redis_server)


def write_then_kill(server: EmbeddedRedis, n: int) -> tuple[redis_sync.Redis, list[int]]:
    client = redis_sync.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
    acknowledged = []
    for i in range(n):
        client.json().set(f"doc:{i}", "$", {"n": i, "status": "requested"})
        client.xadd("events", {"n": str(i)})
        acknowledged.append(i)  # the server said OK: it must be on disk
    server.kill()  # SIGKILL right after the last acknowledgement
    server.start()
    return client, acknowledged


def test_acknowledged_writes_survive_kill_9(tmp_path):
    server = EmbeddedRedis(tmp_path / "data", free_port()).start()
    client, acknowledged = write_then_kill(server, 300)
    try:
        for i in acknowledged:
            assert client.json().get(f"doc:{i}") == {"n": i, "status": "requested"}
        assert client.xlen("events") == len(acknowledged)
        info = client.config_get("appendfsync")
        assert info["appendfsync"] == "always"
    finally:
        client.close()
        server.stop()


def test_the_same_check_sees_losses_without_persistence(tmp_path):
    """Control: the harness above can fail. With persistence off, kill -9 loses."""
    server = EmbeddedRedis(
        tmp_path / "data", free_port(), extra_args=["--appendonly", "no"]
    ).start()
    client, acknowledged = write_then_kill(server, 50)
    try:
        survivors = [i for i in acknowledged if client.json().get(f"doc:{i}") is not None]
        assert len(survivors) < len(acknowledged)
    finally:
        client.close()
        server.stop()


def test_a_clean_stop_and_restart_keeps_data(tmp_path):
    server = EmbeddedRedis(tmp_path / "data", free_port()).start()
    client = redis_sync.Redis(host="127.0.0.1", port=server.port, decode_responses=True)
    try:
        client.set("k", "v")
        server.stop()
        assert server.process.returncode == 0
        server.start()
        assert client.get("k") == "v"
    finally:
        client.close()
        server.stop()


def test_free_port_never_hands_out_a_port_twice():
    # The kernel gives a port closed a moment ago to a later bind(0) (about
    # one in ten of 3,000 here): two services started from one process must
    # still get different ports.
    ports = [free_port() for _ in range(3000)]
    assert len(set(ports)) == len(ports)
