"""Redis Cluster with replicas (EmbeddedCluster(replicas=...)) and a client
that follows a failover: a killed primary's shard is named down by the
readiness check until a replica takes over; the killed node, started again
on its own data, rejoins as a replica of the new primary; a hung (SIGSTOP)
primary is left behind as soon as the cluster has promoted a replica, not
after the client's socket timeout."""

from __future__ import annotations

import asyncio
import time

import pytest

from common.embedded_cluster import EmbeddedCluster
from common.redisconn import SOCKET_TIMEOUT_S, ShardsDown, check_redis_ready, create_redis

KEY = "rh:{sf}:failover-probe"
# The failover window the system promises with a 1 s node timeout (the
# client's own socket timeout, which it used to wait out, is 5 s).
WINDOW_S = 3.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = EmbeddedCluster(tmp_path_factory.mktemp("replicated"), masters=3, replicas=1).start()
    yield c
    c.stop()


def test_topology_names_each_nodes_role_shard_and_primary(cluster):
    nodes = cluster.topology()
    assert len(nodes) == 6
    primaries = {n["shard"]: n for n in nodes if n["role"] == "primary"}
    assert sorted(primaries) == [0, 1, 2]
    for n in nodes:
        if n["role"] == "replica":
            assert n["follows"] == primaries[n["shard"]]["port"]
            assert n["link"] == "up" and n["lag"] is not None


async def test_a_killed_primary_is_down_until_a_replica_takes_over(cluster):
    client = create_redis(cluster.url)
    try:
        await client.set(KEY, "before")
        shard = cluster.shard_of_key(KEY)
        victim = cluster.primary(shard)
        victim.kill()
        with pytest.raises(ShardsDown) as down:
            await check_redis_ready(client)
        assert f"127.0.0.1:{victim.port}" in str(down.value)
        assert str(down.value).count("shard ") == 1  # the other shards answer
        promoted = await asyncio.to_thread(cluster.wait_primary_other_than, shard, victim.port)
        # The client follows by itself; the write acknowledged before is there.
        deadline = time.monotonic() + 10
        while True:
            try:
                await check_redis_ready(client)
                break
            except ShardsDown:
                assert time.monotonic() < deadline, "the client did not follow the failover"
                await asyncio.sleep(0.05)
        assert await client.get(KEY) == "before"
        await client.set(KEY, "after")
        # Started again on its own data, the old primary rejoins as a replica.
        await asyncio.to_thread(victim.start)
        await asyncio.to_thread(cluster.wait_converged)
        node = next(n for n in cluster.topology() if n["port"] == victim.port)
        assert node["role"] == "replica" and node["follows"] == promoted.port
    finally:
        await client.aclose()


async def test_a_hung_primary_is_left_for_the_new_one_within_the_window(cluster):
    client = create_redis(cluster.url)
    try:
        await client.set(KEY, "1")
        shard = cluster.shard_of_key(KEY)
        victim = cluster.primary(shard)
        victim.freeze()
        try:
            await asyncio.to_thread(cluster.wait_primary_other_than, shard, victim.port)
            # Sent once the cluster has a new primary: answered by it, not
            # after the client's socket timeout on the hung node.
            t0 = time.monotonic()
            await client.set(KEY, "2")
            took = time.monotonic() - t0
            assert took < WINDOW_S < SOCKET_TIMEOUT_S, took
        finally:
            victim.thaw()
        await asyncio.to_thread(cluster.wait_converged)
        node = next(n for n in cluster.topology() if n["port"] == victim.port)
        assert node["role"] == "replica"
        assert await client.get(KEY) == "2"
    finally:
        await client.aclose()
