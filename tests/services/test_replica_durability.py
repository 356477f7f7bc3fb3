"""WAIT_REPLICAS on a real replica: an acknowledged write is already in the
replica's AOF when the call returns, and a write no replica confirms in time
is 503.

WAITAOF counts the writes of the connection it is sent on, so the stores send
it on the script's own connection (common.scripts.run_and_wait). The first
test shows why on the server itself: sent on another pooled connection it
confirms at once, even with the replica frozen. The second also bounds the
time of a confirmed write (WAITAOF right behind a write waited for the
replica's once-a-second report).
"""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
import redis as redis_sync
from redis import asyncio as aioredis
from redis.cluster import key_slot

from common.scripts import load as load_functions
from common import errors, ids, keys
from common.embedded import EmbeddedRedis, free_port
from common.embedded_cluster import EmbeddedCluster
from common.redisconn import create_redis
from common.regions import Region
from common.scripts import WAIT_TIMEOUT_MS, write_and_wait
from driver_service.settings import DriverSettings
from driver_service.store import DriverStore
from tests.replicas import Frozen, primary_with_replica, stop_replica, wait_online
from tests.waiting import eventually
from trip_service.settings import TripSettings
from trip_service.store import TripStore

CENTER = {"lat": 37.7749, "lon": -122.4194}
DROPOFF = {"lat": 37.7955, "lon": -122.3937}
NYC_CENTER = {"lat": 40.75, "lon": -73.98}
SF = Region("sf", 37.70, -122.52, 37.83, -122.35)
NYC = Region("nyc", 40.70, -74.02, 40.80, -73.93)
CAR = {"make": "Toyota", "model": "Prius", "color": "blue", "plate": "7ABC123", "seats": 4}
# A write no replica confirms is answered when WAITAOF times out: allow for a loaded machine.
LATE_S = WAIT_TIMEOUT_MS / 1000 + 2.0


@pytest.fixture
async def pair(tmp_path: Path):
    """A primary and its replica, both JSON and AOF `appendfsync always`."""
    async with primary_with_replica(tmp_path) as servers:
        yield servers


@pytest.fixture
async def clients(pair):
    primary, replica = pair
    on_primary = create_redis(primary.url)
    on_replica = create_redis(replica.url)
    yield on_primary, on_replica
    await on_primary.aclose()
    await on_replica.aclose()


def stores(redis, url: str, **overrides) -> tuple[TripStore, DriverStore]:
    """Both stores on `redis`, each with its service's settings (WAIT_REPLICAS=1)."""
    given = {"redis_url": url, "wait_replicas": 1, **overrides}
    return (TripStore(redis, TripSettings.from_env(env={}, **given)),
            DriverStore(redis, DriverSettings.from_env(env={}, **given)))


async def request(trips: TripStore, at: dict = CENTER, region: str = "sf") -> dict:
    return await trips.request(ids.new_id(ids.RIDER, region), "standard", at, DROPOFF, None)


async def doc_on(client, key: str) -> dict | None:
    raw = await client.execute_command("JSON.GET", key)
    return orjson.loads(raw) if raw else None


async def test_waitaof_counts_only_the_writes_of_its_own_connection(pair, clients):
    """The bug this guards against, on the server itself: a write on one
    connection, WAITAOF on another, and the replica frozen."""
    _, replica = pair
    on_primary, _ = clients
    writer = redis_sync.Redis(host="127.0.0.1", port=pair[0].port)
    other = redis_sync.Redis(host="127.0.0.1", port=pair[0].port)
    try:
        other.ping()  # connected before the write, never writes
        with Frozen(replica):
            writer.set("rh:{sf}:probe", "1")
            t0 = time.monotonic()
            # Another connection: confirmed at once, though no replica has the write.
            # (The reply is [local AOFs, replica AOFs] that have the connection's writes.)
            assert other.execute_command("WAITAOF", 0, 1, 2000)[1] == 1
            assert time.monotonic() - t0 < 1.0
            # The writing connection: not confirmed (it waits out its timeout).
            assert writer.execute_command("WAITAOF", 0, 1, 200)[1] == 0
    finally:
        writer.close()
        other.close()


async def test_an_acknowledged_write_is_already_on_the_replica(clients):
    on_primary, on_replica = clients
    trips, drivers = stores(on_primary, "unused")
    for _ in range(20):
        t0 = time.monotonic()
        trip = await request(trips)
        # Not the replica's once-a-second report (a loaded machine may take a while).
        assert time.monotonic() - t0 < 0.5
        # Read from the replica at once: no waiting, no retry.
        stored = await doc_on(on_replica, keys.trip(trip["id"]))
        assert stored is not None and stored["status"] == "requested"
        cancelled = await trips.cancel(trip["id"], trip["rider_id"], None)
        assert (await doc_on(on_replica, keys.trip(trip["id"])))["status"] == cancelled["status"]
    driver_id = ids.new_id(ids.DRIVER, "sf")
    await drivers.register(driver_id, "Dee", "Driver", CAR, "standard")
    assert (await doc_on(on_replica, keys.driver(driver_id)))["id"] == driver_id
    online = await drivers.go_online(driver_id)
    assert (await doc_on(on_replica, keys.driver(driver_id)))["status"] == online["status"]


async def test_a_write_no_replica_confirms_is_503_within_the_timeout(pair, clients):
    _, replica = pair
    on_primary, on_replica = clients
    trips, _ = stores(on_primary, "unused")
    rider = ids.new_id(ids.RIDER, "sf")
    trip_id = ids.new_id(ids.TRIP, "sf")
    with Frozen(replica):
        t0 = time.monotonic()
        with pytest.raises(errors.Unavailable) as info:
            await trips.request(rider, "standard", CENTER, DROPOFF, trip_id)
        took = time.monotonic() - t0
        assert WAIT_TIMEOUT_MS / 1000 * 0.9 <= took < LATE_S, took
        assert info.value.status == 503
        # The 503 said "not confirmed", not "not written": the retry (the same
        # trip id, as the gateway's idempotency sends it) finds the trip, and
        # is not confirmed either.
        with pytest.raises(errors.Unavailable):
            await trips.request(rider, "standard", CENTER, DROPOFF, trip_id)
        # A refusal writes nothing: still its own answer, not a 503.
        with pytest.raises(errors.Conflict):
            await trips.request(rider, "standard", CENTER, DROPOFF, None)
    # The replica back: the retry is confirmed, and the replica has the trip.
    again = await trips.request(rider, "standard", CENTER, DROPOFF, trip_id)
    assert again["id"] == trip_id
    assert (await doc_on(on_replica, keys.trip(trip_id)))["id"] == trip_id
    trip = await request(trips)
    assert await doc_on(on_replica, keys.trip(trip["id"])) is not None


async def test_with_the_replica_down_writes_are_503_until_it_is_back(pair, clients):
    primary, replica = pair
    on_primary, on_replica = clients
    trips, drivers = stores(on_primary, "unused")
    replica.stop()
    t0 = time.monotonic()
    with pytest.raises(errors.Unavailable):
        await request(trips)
    assert time.monotonic() - t0 < LATE_S
    driver_id = ids.new_id(ids.DRIVER, "sf")
    for _ in range(2):  # the first attempt, then its replay (answered `exists`)
        with pytest.raises(errors.Unavailable):
            await drivers.register(driver_id, "Dee", "Driver", CAR, "standard")
    # WAIT_REPLICAS=0 does not ask: the same primary acknowledges at once.
    unsafe, _ = stores(on_primary, "unused", wait_replicas=0)
    await request(unsafe)
    replica.start()
    await wait_online(primary, replica)
    await on_replica.connection_pool.disconnect()
    trip = await request(trips)
    assert await doc_on(on_replica, keys.trip(trip["id"])) is not None
    _, created = await drivers.register(driver_id, "Dee", "Driver", CAR, "standard")
    assert created is False
    assert (await doc_on(on_replica, keys.driver(driver_id)))["id"] == driver_id


# --- Redis Cluster --------------------------------------------------------------
@pytest.fixture
async def cluster_with_a_replica(tmp_path: Path):
    """Three masters; the one serving region sf has a replica, nyc's has none."""
    cluster = EmbeddedCluster(tmp_path / "cluster").start()
    load_functions(cluster.url)
    bus = free_port()
    replica = EmbeddedRedis(
        tmp_path / "cluster" / "replica", free_port(),
        extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", "2000", "--cluster-port", str(bus)],
    )
    try:
        replica.start()
        sf_master = master_of(cluster, "sf")
        assert master_of(cluster, "nyc") is not sf_master, "sf and nyc share a master"
        m = redis_sync.Redis(host="127.0.0.1", port=sf_master.port, decode_responses=True)
        try:
            sf_id = m.execute_command("CLUSTER", "MYID")
            m.config_set("repl-diskless-sync-delay", 0)
        finally:
            m.close()
        r = redis_sync.Redis(host="127.0.0.1", port=replica.port, decode_responses=True)
        try:
            r.execute_command("CLUSTER", "MEET", "127.0.0.1", sf_master.port,
                              cluster_bus_port(sf_master))

            def knows_master():
                nodes = r.execute_command("CLUSTER", "NODES")
                return sf_id in nodes and "handshake" not in nodes

            await eventually(knows_master, timeout=30, message="the replica did not join")
            r.execute_command("CLUSTER", "REPLICATE", sf_id)
        finally:
            r.close()
        await wait_online(sf_master, replica)
        yield cluster, replica
    finally:
        stop_replica(replica)
        cluster.stop()


def master_of(cluster: EmbeddedCluster, region: str) -> EmbeddedRedis:
    return master_of_key(cluster, keys.trip(ids.new_id(ids.TRIP, region)))


def master_of_key(cluster: EmbeddedCluster, key: str) -> EmbeddedRedis:
    slot = key_slot(key.encode())
    c = redis_sync.Redis(host="127.0.0.1", port=cluster.nodes[0].port, decode_responses=True)
    try:
        ranges = c.execute_command("CLUSTER", "SLOTS")
    finally:
        c.close()
    port = next(nodes[0][1] for first, last, *nodes in ranges if first <= slot <= last)
    return next(n for n in cluster.nodes if n.port == port)


def cluster_bus_port(node: EmbeddedRedis) -> int:
    args = node.extra_args
    return int(args[args.index("--cluster-port") + 1])


async def test_on_a_cluster_the_write_waits_on_its_own_shard(cluster_with_a_replica):
    cluster, replica = cluster_with_a_replica
    client = create_redis(cluster.url)
    # One connection, in READONLY mode: it reads the slots its master serves.
    on_replica = aioredis.Redis(host="127.0.0.1", port=replica.port, decode_responses=True,
                                single_connection_client=True)
    try:
        await on_replica.execute_command("READONLY")
        trips, drivers = stores(client, cluster.url, regions=(SF, NYC))
        for _ in range(10):
            trip = await request(trips)
            stored = await doc_on(on_replica, keys.trip(trip["id"]))
            assert stored is not None and stored["status"] == "requested"
        driver_id = ids.new_id(ids.DRIVER, "sf")
        await drivers.register(driver_id, "Dee", "Driver", CAR, "standard")
        assert (await doc_on(on_replica, keys.driver(driver_id)))["id"] == driver_id
        # nyc's master has no replica: its writes cannot be confirmed.
        t0 = time.monotonic()
        with pytest.raises(errors.Unavailable):
            await request(trips, NYC_CENTER, "nyc")
        assert time.monotonic() - t0 < LATE_S
        # The sf replica frozen: sf writes are 503 too.
        with Frozen(replica), pytest.raises(errors.Unavailable):
            await request(trips)
    finally:
        await client.aclose()
        await on_replica.aclose()


async def test_on_a_cluster_a_moved_slot_is_followed(tmp_path: Path):
    """The batch goes to the node the client's slot map names; after the slot
    moved, that node answers MOVED (nothing ran), the client's map is updated
    and the batch goes to the new primary."""
    cluster = EmbeddedCluster(tmp_path / "cluster").start()
    load_functions(cluster.url)
    client = create_redis(cluster.url)
    admins = [redis_sync.Redis(host="127.0.0.1", port=n.port, decode_responses=True)
              for n in cluster.nodes]
    try:
        key = "rh:{moved}:probe"
        await client.execute_command("JSON.GET", key)  # the client learns the slot map
        owner = master_of_key(cluster, key)
        target = next(n for n in cluster.nodes if n is not owner)
        target_id = admins[cluster.nodes.index(target)].execute_command("CLUSTER", "MYID")
        for admin in admins:  # the slot is empty: give it to another master
            admin.execute_command("CLUSTER", "SETSLOT", key_slot(key.encode()), "NODE", target_id)
        assert master_of_key(cluster, key) is target
        assert client.get_node_from_key(key).port == owner.port  # the client's map is stale
        reply, waited = await write_and_wait(client, key, ("SET", key, "1"), 0)
        assert client.get_node_from_key(key).port == target.port
        assert reply is True and len(waited) == 2  # SET's "OK" as redis-py gives it; WAITAOF's pair
        assert admins[cluster.nodes.index(target)].get(key) == "1"
    finally:
        for admin in admins:
            admin.close()
        await client.aclose()
        cluster.stop()
