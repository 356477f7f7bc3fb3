"""GET /v1/ops/topology: one server says so; on Redis Cluster with replicas
the watcher finds every shard and node, and records a failover of a frozen
primary, which comes back as a replica of its successor."""

from __future__ import annotations

import pytest

from common.embedded import free_port
from common.embedded_cluster import EmbeddedCluster
from gateway.topology import TopologyWatcher
from tests.waiting import eventually

from tests.helpers.gateway import OPS_PASSWORD, bearer


async def test_one_server_is_said_plainly(client):
    resp = await client.post("/v1/sessions", json={"user_name": "ops", "password": OPS_PASSWORD})
    token = (await resp.json())["token"]
    resp = await client.get("/v1/ops/topology", headers=bearer(token))
    assert resp.status == 200
    assert await resp.json() == {"mode": "one server", "polled_at": None,
                                 "poll_interval_s": None, "shards": [], "failovers": [],
                                 "problem": None}


@pytest.fixture
def cluster(tmp_path):
    cluster = EmbeddedCluster(tmp_path / "cluster", masters=3, replicas=1).start(timeout=60)
    try:
        yield cluster
    finally:
        for node in cluster.nodes:
            node.thaw()
        cluster.stop()


@pytest.mark.timeout(120)
async def test_a_frozen_primary_is_a_failover_and_comes_back_as_a_replica(cluster):
    watcher = TopologyWatcher(cluster.url, ["sf"], poll_s=0.2, timeout_s=0.3)
    try:
        first = await watcher.poll()
        assert first["mode"] == "cluster"
        assert [len(s["nodes"]) for s in first["shards"]] == [2, 2, 2]
        assert [s["slots"][0][0] for s in first["shards"]] == [0, 5461, 10922]
        assert sum(s["regions"] == ["sf"] for s in first["shards"]) == 1
        for shard in first["shards"]:
            primary, replica = shard["nodes"]
            assert (primary["role"], primary["address"]) == ("primary", shard["primary"])
            assert (replica["role"], replica["follows"]) == ("replica", shard["primary"])

        shard = next(s for s in first["shards"] if s["regions"] == ["sf"])
        old = shard["primary"]
        victim = cluster.node(int(old.rsplit(":", 1)[1]))
        victim.freeze()

        async def no_primary():
            snap = await watcher.poll()
            s = next(x for x in snap["shards"] if x["id"] == shard["id"])
            return s["primary"] is None and s["no_primary_for_s"] is not None

        await eventually(no_primary, timeout=10, message="the frozen primary still counted")

        async def failed_over():
            snap = await watcher.poll()
            return snap if watcher.snapshot()["failovers"] else None

        await eventually(failed_over, timeout=20, message="no failover recorded")
        failover = watcher.snapshot()["failovers"][0]
        assert failover["failed"] == old and failover["promoted"] != old
        assert failover["regions"] == ["sf"] and failover["no_primary_s"] > 0
        new = failover["promoted"]

        victim.thaw()

        async def rejoined():
            snap = await watcher.poll()
            s = next(x for x in snap["shards"] if x["id"] == shard["id"])
            node = next(n for n in s["nodes"] if n["address"] == old)
            return s["primary"] == new and node["role"] == "replica" and \
                node["follows"] == new and node["link"] == "up"

        await eventually(rejoined, timeout=20, message=f"{old} did not rejoin as a replica")
        # The old primary's return is not a second failover.
        assert len(watcher.snapshot()["failovers"]) == 1
    finally:
        await watcher.close()


async def test_a_cluster_that_does_not_answer_is_said_with_why():
    watcher = TopologyWatcher(f"redis+cluster://127.0.0.1:{free_port()}", ["sf"], timeout_s=0.2)
    try:
        snap = await watcher.poll()
        assert snap["mode"] == "cluster" and snap["shards"] == []
        assert snap["problem"].startswith("no node answered CLUSTER SHARDS: ConnectionError")
    finally:
        await watcher.close()
