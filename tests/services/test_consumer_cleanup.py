"""Consumers leave their groups: a stopped process removes its own, stream
maintenance reaps those of crashed processes, and no consumer with pending
entries is ever removed (its entries would become unclaimable)."""

from __future__ import annotations

import pytest

from common.scripts import load as load_functions
from common import keys
from common.embedded_cluster import EmbeddedCluster
from common.events import entry_fields, envelope
from common.redisconn import create_redis
from common.streams import ensure_group, remove_consumers
from driver_service.app import Workers
from driver_service.maintenance import StreamMaintenance
from tests.waiting import eventually

STREAM = keys.events("sf")
GROUP = keys.GROUP_DISPATCH


async def publish(redis, n: int, stream: str = STREAM) -> None:
    for _ in range(n):
        await redis.xadd(stream, entry_fields(envelope("driver.online", "test")))


async def consumers(redis, stream: str = STREAM) -> dict[str, dict]:
    return {c["name"]: c for c in await redis.xinfo_consumers(stream, GROUP)}


async def idle_longer_than(redis, name: str, ms: int) -> bool:
    return (await consumers(redis))[name]["idle"] > ms


async def test_a_crashed_consumer_is_reaped_only_after_its_entries_were_claimed(
        redis, driver_settings):
    await publish(redis, 3)
    await ensure_group(redis, STREAM, GROUP)
    # It read and died before acknowledging.
    await redis.xreadgroup(GROUP, "crashed", {STREAM: ">"}, count=3)
    reaper = StreamMaintenance(redis, driver_settings, consumer_idle_ms=50)
    await eventually(lambda: idle_longer_than(redis, "crashed", 50))
    assert await reaper.reap_once() == 0
    assert (await consumers(redis))["crashed"]["pending"] == 3

    # Another consumer takes its entries over, as StreamConsumer.reclaim does.
    await redis.xautoclaim(STREAM, GROUP, "survivor", min_idle_time=0, start_id="0-0")
    assert (await consumers(redis))["crashed"]["pending"] == 0
    assert await reaper.reap_once() == 1
    # The survivor holds the entries now: it stays, however idle it gets.
    assert set(await consumers(redis)) == {"survivor"}
    await eventually(lambda: idle_longer_than(redis, "survivor", 50))
    assert await reaper.reap_once() == 0
    assert reaper.reaped == 1


async def test_a_consumer_idle_less_than_the_threshold_is_kept(redis, driver_settings):
    await ensure_group(redis, STREAM, GROUP)
    await redis.xreadgroup(GROUP, "quiet", {STREAM: ">"}, count=1)  # nothing to read
    await eventually(lambda: idle_longer_than(redis, "quiet", 50))
    # Idle, nothing pending, but not for the default threshold (minutes).
    assert await StreamMaintenance(redis, driver_settings).reap_once() == 0
    assert set(await consumers(redis)) == {"quiet"}
    assert await StreamMaintenance(redis, driver_settings, consumer_idle_ms=50).reap_once() == 1
    assert await consumers(redis) == {}


async def test_missing_streams_and_groups_have_nothing_to_reap(redis, driver_settings):
    assert await StreamMaintenance(redis, driver_settings, consumer_idle_ms=0).reap_once() == 0
    await publish(redis, 1)  # a stream without groups
    assert await StreamMaintenance(redis, driver_settings, consumer_idle_ms=0).reap_once() == 0


async def test_a_stopped_driver_service_leaves_both_groups(make_rig, redis):
    rig = await make_rig(Workers(sweeper=False, maintenance=False))
    name = rig.settings.consumer_name
    mine = {f"{name}-{keys.GROUP_DISPATCH}", f"{name}-{keys.GROUP_DRIVER_STATS}"}

    async def joined():
        groups = await redis.xinfo_groups(STREAM)
        names = set()
        for g in groups:
            names |= {c["name"] for c in await redis.xinfo_consumers(STREAM, g["name"])}
        return names == mine

    await eventually(joined)
    await rig.drivers.close()  # a graceful shutdown: the workers stop, then Redis closes
    for group in (keys.GROUP_DISPATCH, keys.GROUP_DRIVER_STATS):
        assert await redis.xinfo_consumers(STREAM, group) == []


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = EmbeddedCluster(tmp_path_factory.mktemp("cluster")).start()
    load_functions(c.url)
    yield c
    c.stop()


async def test_consumers_are_removed_on_the_cluster(cluster):
    client = create_redis(cluster.url)
    try:
        # Regions on different shards: the script runs where its stream lives.
        for region in ("sf", "nyc", "la"):
            stream = keys.events(region)
            await publish(client, 1, stream)
            await ensure_group(client, stream, GROUP)
            await client.xreadgroup(GROUP, "busy", {stream: ">"}, count=1)
            await client.xreadgroup(GROUP, "done", {stream: ">"}, count=1)
            assert await remove_consumers(client, stream, GROUP, name="busy") == []
            assert await remove_consumers(client, stream, GROUP) == ["done"]
            assert set(await consumers(client, stream)) == {"busy"}
    finally:
        await client.aclose()
