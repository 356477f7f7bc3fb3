"""The same client code on a Redis Cluster of three masters (the path past one machine)."""

from __future__ import annotations

import asyncio

import pytest

from common import keys
from common.embedded_cluster import EmbeddedCluster
from common.events import entry_fields, envelope
from common.redisconn import check_json, create_redis
from common.streams import StreamConsumer
from tests.waiting import eventually

TRIP = "trp_{region}_01JDQ3V8M7X1Y2Z3A4B5C6D7E8"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = EmbeddedCluster(tmp_path_factory.mktemp("cluster")).start()
    yield c
    c.stop()


async def test_regions_spread_over_shards_and_each_region_is_one_slot(cluster):
    client = create_redis(cluster.url)
    try:
        await check_json(client, cluster.url)
        slots = {}
        for region in ("sf", "nyc", "la", "sea", "chi", "bos"):
            trip_id = TRIP.format(region=region)
            region_keys = [
                keys.trip(trip_id), keys.trip_events(trip_id), keys.pending(region, "xl"),
                keys.geo(region, "xl"), keys.events(region), keys.dead_letters(region),
                keys.offer_deadlines(region), keys.expiry_deadlines(region),
            ]
            region_slots = {client.keyslot(k) for k in region_keys}
            assert len(region_slots) == 1, region
            slots[region] = region_slots.pop()
        owners = {client.get_node_from_key(keys.events(r)).port for r in slots}
        assert len(owners) > 1  # regions land on different masters
    finally:
        await client.aclose()


async def test_a_script_touching_a_regions_keys_runs_on_its_shard(cluster):
    client = create_redis(cluster.url)
    move = client.register_script(
        """
        redis.call('JSON.SET', KEYS[1], '$', ARGV[1])
        redis.call('ZADD', KEYS[2], 1, ARGV[2])
        return redis.call('XADD', KEYS[3], '*', 'type', 'trip.requested')
        """
    )
    try:
        for region in ("sf", "nyc", "la"):
            trip_id = TRIP.format(region=region)
            await move(
                keys=[keys.trip(trip_id), keys.pending(region, "standard"), keys.events(region)],
                args=['{"status":"requested"}', trip_id],
            )
            assert await client.json().get(keys.trip(trip_id), "$.status") == ["requested"]
    finally:
        await client.aclose()


async def test_the_consumer_runner_works_on_the_cluster(cluster):
    client = create_redis(cluster.url)
    handled = []

    async def handler(entry):
        handled.append(entry.id)

    try:
        stream = keys.events("bos")  # a stream no other test wrote to
        ids = [
            await client.xadd(stream, entry_fields(envelope("driver.online", "test")))
            for _ in range(20)
        ]
        consumer = StreamConsumer(client, stream, "cluster-test", "c1", handler, block_ms=50)
        task = asyncio.create_task(consumer.run())
        await eventually(lambda: len(handled) == 20)
        consumer.stop()
        await task
        assert handled == ids
    finally:
        await client.aclose()
