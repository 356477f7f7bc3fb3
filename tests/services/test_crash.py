"""A dispatcher dies with entries in hand: they are reclaimed (XAUTOCLAIM) by
a live one and every pending trip is still offered, none twice at once."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

from common import keys
from common.streams import ensure_group, read_deliveries
from driver_service.app import Workers
from driver_service.app import create_app as create_driver_app
from tests.harness import ServiceProcess

from tests.helpers.services import near
from tests.waiting import eventually
from .test_races import replay_offers

NO_DISPATCH = Workers(dispatch=False, sweeper=False)


async def _offered_trips(rig) -> set[str]:
    return {e["trip_id"] for e in await rig.events() if e["type"] == "trip.offered"}


async def test_abandoned_consumer_entries_are_reclaimed(make_rig, aiohttp_client):
    rig = await make_rig(NO_DISPATCH)
    stream = keys.events("sf")
    await ensure_group(rig.redis, stream, keys.GROUP_DISPATCH)
    for i in range(12):
        await rig.new_driver(near(0.001 * (i % 4), 0.001 * (i // 4)))
    trips = [await rig.request(near(0.0005 * i)) for i in range(12)]
    # A consumer reads everything and dies without acknowledging.
    reply = await rig.redis.xreadgroup(keys.GROUP_DISPATCH, "dead-one", {stream: ">"}, count=500)
    taken = [sid for sid, _ in reply[0][1]]
    assert len(taken) >= 24
    assert await _offered_trips(rig) == set()
    live = create_driver_app(
        replace(rig.settings, service="driver_service", consumer_name="live"),
        Workers(sweeper=False, maintenance=False),
    )
    await aiohttp_client(live)
    want = {t["id"] for t in trips}

    async def all_offered():
        return await _offered_trips(rig) == want

    await eventually(all_offered, timeout=10,
                     message="timed out waiting for every trip offered after reclaim")
    offers, _ = replay_offers(await rig.events())
    assert offers == len(want)

    async def settled():
        return (await rig.redis.xpending(stream, keys.GROUP_DISPATCH))["pending"] == 0

    await eventually(settled, timeout=5,
                     message="timed out waiting for reclaimed entries acknowledged")
    history = await read_deliveries(rig.redis, "sf", taken[-1])
    dispatch = [d for d in history if d["group"] == keys.GROUP_DISPATCH]
    assert [(d["consumer"], d["attempts"]) for d in dispatch] == [("live-dispatch", 2)]
    assert dispatch[0]["acked_at"] is not None


async def test_killed_dispatcher_process_loses_no_trip(make_rig, redis_server, tmp_path):
    rig = await make_rig(NO_DISPATCH)
    # Enough trips that the batch outlasts the moment between the first offer
    # and the kill, even on a loaded machine.
    n = 150
    await asyncio.gather(*(rig.new_driver(near(0.0008 * (i % 8), 0.0008 * (i // 8)))
                           for i in range(n)))
    trips = [await rig.request(near(0.0004 * (i % 10), 0.0004 * (i // 10))) for i in range(n)]
    want = {t["id"] for t in trips}
    env = {"REDIS_URL": redis_server, "CLAIM_IDLE_MS": "300", "SWEEP_INTERVAL_S": "0.05"}
    stream = keys.events("sf")
    first = await asyncio.to_thread(
        ServiceProcess("driver_service", env, log_path=tmp_path / "first.log").start
    )
    second = None
    try:
        # Kill -9 as soon as the first offer lands: the rest of its batch is in hand.
        deadline = time.monotonic() + 20
        while not await _offered_trips(rig):
            assert time.monotonic() < deadline, "the first dispatcher never offered"
            await asyncio.sleep(0.003)
        first.kill()
        consumers = await rig.redis.xinfo_consumers(stream, keys.GROUP_DISPATCH)
        in_hand = sum(c["pending"] for c in consumers)
        assert in_hand > 0, "the dispatcher was killed with nothing in hand"
        assert len(await _offered_trips(rig)) < n
        second = await asyncio.to_thread(
            ServiceProcess("driver_service", env, log_path=tmp_path / "second.log").start
        )

        async def all_offered():
            return await _offered_trips(rig) == want

        await eventually(all_offered, timeout=20, interval=0.05,
                         message="timed out waiting for every trip offered")

        async def settled():
            return (await rig.redis.xpending(stream, keys.GROUP_DISPATCH))["pending"] == 0

        await eventually(settled, timeout=10,
                         message="timed out waiting for entries of the dead one acknowledged")
    finally:
        first.kill()
        if second is not None:
            await asyncio.to_thread(second.stop)
    offers, _ = replay_offers(await rig.events())
    assert offers == n  # each trip offered once: nobody declined, nothing expired
    for t in trips[:5]:
        assert (await rig.doc(t["id"])).get("offer") is not None
