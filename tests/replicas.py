"""A primary and its replica for the WAIT_REPLICAS tests: real servers, both
with JSON and AOF `appendfsync always`."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis as redis_sync

from common.scripts import load as load_functions
from common.embedded import EmbeddedRedis, free_port
from tests.waiting import eventually

# No 5 s pause for more replicas before the first (diskless) full sync.
NO_SYNC_DELAY = ["--repl-diskless-sync-delay", "0"]


def replica_online(primary: redis_sync.Redis, replica: redis_sync.Redis) -> bool:
    try:
        info = primary.info("replication")
        link = replica.info("replication").get("master_link_status")
    except redis_sync.ConnectionError:
        return False
    slaves = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
    return link == "up" and any(s.get("state") == "online" for s in slaves)


async def wait_online(primary: EmbeddedRedis, replica: EmbeddedRedis) -> None:
    p = redis_sync.Redis(host="127.0.0.1", port=primary.port, decode_responses=True)
    r = redis_sync.Redis(host="127.0.0.1", port=replica.port, decode_responses=True)
    try:
        await eventually(lambda: replica_online(p, r), timeout=30,
                         message="the replica did not come online")
    finally:
        p.close()
        r.close()


class Frozen:
    """SIGSTOP of the replica: its link stays up but it applies and confirms
    nothing until SIGCONT (a replica that lags)."""

    def __init__(self, server: EmbeddedRedis) -> None:
        self.pid = server.process.pid

    def __enter__(self) -> "Frozen":
        os.kill(self.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc) -> None:
        os.kill(self.pid, signal.SIGCONT)


def stop_replica(replica: EmbeddedRedis) -> None:
    """Stop a replica, thawing it first if a test left it frozen."""
    if replica.process is not None and replica.process.poll() is None:
        os.kill(replica.process.pid, signal.SIGCONT)
    replica.stop()


@asynccontextmanager
async def primary_with_replica(folder: Path) -> AsyncIterator[tuple[EmbeddedRedis, EmbeddedRedis]]:
    primary = EmbeddedRedis(folder / "primary", free_port(), extra_args=NO_SYNC_DELAY).start()
    load_functions(primary.url)  # the replica gets them by replication
    replica = EmbeddedRedis(
        folder / "replica", free_port(),
        extra_args=["--replicaof", "127.0.0.1", str(primary.port)],
    )
    try:
        replica.start()
        await wait_online(primary, replica)
        yield primary, replica
    finally:
        stop_replica(replica)
        primary.stop()
