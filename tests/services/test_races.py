"""Races, each repeated: one winner and a consistent state every time."""

from __future__ import annotations

import asyncio
import random
from dataclasses import replace

import pytest

from common import ids, keys
from common.streams import StreamConsumer, ensure_group
from driver_service.app import DISPATCHER, STORE, Workers
from driver_service.dispatcher import Dispatcher
from driver_service.dispatcher import ordered_by as dispatch_order
from driver_service.app import create_app as create_driver_app

from tests.helpers.services import near
from tests.waiting import eventually

ROUNDS = 15


async def check_indexes(rig) -> None:
    """The derived indexes agree with the documents."""
    r = rig.redis
    pending = set(await r.zrange(keys.pending("sf", "standard"), 0, -1))
    waiting = set()
    for trip_id in pending:
        doc = await rig.doc(trip_id)
        assert doc["status"] == "requested"
        if doc.get("offer") is None:
            waiting.add(trip_id)
    assert set(await r.zrange(keys.pickups("sf", "standard"), 0, -1)) == waiting
    geo = set(await r.zrange(keys.geo("sf", "standard"), 0, -1))
    supply = sum(int(v) for v in (await r.hgetall(keys.supply("sf", "standard"))).values())
    assert supply == len(geo)
    for driver_id in geo:
        d = await rig.driver_doc(driver_id)
        assert d["status"] == "online" and d.get("offer") is None and d.get("trip_id") is None
    # The ops indexes: exactly the active trips, exactly the online drivers.
    tag = keys.tag("sf")
    trip_keys = [k async for k in r.scan_iter(match=f"{tag}:trip:*") if ":events" not in k]
    active = set()
    for key in trip_keys:
        doc = await rig.doc(key.rsplit(":", 1)[1])
        if doc["status"] in ("requested", "assigned", "arrived", "in_progress"):
            active.add(doc["id"])
    assert set(await r.zrange(keys.active_trips("sf"), 0, -1)) == active
    driver_keys = [k async for k in r.scan_iter(match=f"{tag}:driver:*")
                   if not k.endswith(":trips")]
    online = set()
    for key in driver_keys:
        d = await rig.driver_doc(key.rsplit(":", 1)[1])
        if d["status"] == "online":
            online.add(d["id"])
    assert set(await r.zrange(keys.online_driver_ids("sf"), 0, -1)) == online


async def test_fifty_concurrent_accepts_have_one_winner(rig, rng):
    others = [await rig.new_driver(near(0.02)) for _ in range(4)]
    for _ in range(ROUNDS):
        driver_id = await rig.new_driver(near())
        trip = await rig.request(near())
        offer = await rig.offered(driver_id)
        assert offer["trip_id"] == trip["id"]
        callers = [driver_id] * 25 + [others[i % 4] for i in range(25)]
        rng.shuffle(callers)
        responses = await asyncio.gather(*(rig.accept(d, trip["id"]) for d in callers))
        for caller, resp in zip(callers, responses):
            # The others were never offered the trip: for them it does not exist.
            assert resp.status == (200 if caller == driver_id else 404)
        types = await rig.types_of(trip["id"])
        assert types.count("trip.assigned") == 1
        doc = await rig.doc(trip["id"])
        assert doc["status"] == "assigned" and doc["driver_id"] == driver_id
        assert (await rig.driver_doc(driver_id))["trip_id"] == trip["id"]
        # Free the driver for the next round (and keep the geo small).
        for action in ("arrive", "start", "complete"):
            assert (await rig.act(driver_id, trip["id"], action)).status == 200
        await rig.status(driver_id, "offline")
    counts = await rig.redis.hgetall(keys.trip_status_counts("sf"))
    assert counts == {"completed": str(ROUNDS)}
    await check_indexes(rig)


async def test_accept_against_rider_cancel(rig, rng):
    for _ in range(ROUNDS):
        driver_id = await rig.new_driver(near())
        trip = await rig.request(near())
        await rig.offered(driver_id)
        # Either may leave first: both orders must end consistent.
        lead = rng.random() < 0.5

        async def delayed(coro, first):
            await asyncio.sleep(0 if first else rng.uniform(0, 0.003))
            return await coro

        accept, cancel = await asyncio.gather(
            delayed(rig.accept(driver_id, trip["id"]), lead),
            delayed(rig.cancel(trip["id"], trip["rider_id"]), not lead),
        )
        assert cancel.status == 200  # the rider can cancel requested and assigned alike
        assert accept.status in (200, 409)
        types = await rig.types_of(trip["id"])
        doc = await rig.doc(trip["id"])
        assert doc["status"] == "cancelled"
        if accept.status == 200:
            assert types == ["trip.requested", "trip.offered", "trip.assigned", "trip.cancelled"]
            assert doc["driver_id"] == driver_id
        else:
            assert types == ["trip.requested", "trip.offered", "trip.cancelled"]
            assert "driver_id" not in doc

        async def freed():
            d = await rig.driver_doc(driver_id)
            return d.get("trip_id") is None and d.get("offer") is None and d.get("supply_cell") is not None

        await eventually(freed, timeout=5, message="timed out waiting for driver freed")
        await rig.status(driver_id, "offline")
    await check_indexes(rig)
    assert await rig.redis.zcard(keys.offer_deadlines("sf")) == 0


def replay_offers(events: list[dict]) -> tuple[int, int]:
    """Walk the stream in order: a trip never has two open offers, a driver
    never holds two. Returns (offers, max simultaneously open)."""
    trip_open: dict[str, str] = {}
    driver_open: dict[str, str] = {}
    offers = peak = 0
    closing = {"trip.offer_declined", "trip.offer_expired", "trip.assigned",
               "trip.cancelled", "trip.expired"}
    for e in events:
        t, trip_id, driver_id = e["type"], e.get("trip_id"), e.get("driver_id")
        if t == "trip.offered":
            assert trip_id not in trip_open, f"{trip_id} offered twice at once"
            assert driver_id not in driver_open, f"{driver_id} holds two offers"
            trip_open[trip_id] = driver_id
            driver_open[driver_id] = trip_id
            offers += 1
            peak = max(peak, len(trip_open))
        elif t in closing and trip_id in trip_open:
            holder = trip_open.pop(trip_id)
            driver_open.pop(holder, None)
    return offers, peak


async def test_two_dispatchers_never_double_offer(make_rig, aiohttp_client, rng):
    rig = await make_rig(offer_timeout_s=0.5)
    # A second driver_service replica on the same consumer group.
    second = create_driver_app(
        replace(rig.settings, service="driver_service", consumer_name="replica-2"),
        Workers(maintenance=False),
    )
    await aiohttp_client(second)
    drivers = [await rig.new_driver(near(0.003 * (i % 6), -0.003 * (i // 6)))
               for i in range(18)]
    trips = await asyncio.gather(*(
        rig.request(near(0.002 * (i % 7), 0.002 * (i // 7))) for i in range(40)
    ))
    trip_ids = {t["id"] for t in trips}
    assigned: set[str] = set()
    # Each driver's own draws, from the test's seed (not from its random id).
    seeds = {driver_id: rng.randrange(2**32) for driver_id in drivers}

    async def driver_loop(driver_id: str) -> None:
        choices = random.Random(seeds[driver_id])
        while len(assigned) < len(trip_ids):
            offer = await rig.next_offer(driver_id, wait=0.5)
            if offer is None:
                continue
            if choices.random() < 0.5:
                await rig.decline(driver_id, offer["trip_id"])
                continue
            r = await rig.accept(driver_id, offer["trip_id"])
            if r.status == 200:
                assigned.add(offer["trip_id"])
                for action in ("arrive", "start", "complete"):
                    await rig.act(driver_id, offer["trip_id"], action)

    async def all_done():
        counts = await rig.redis.hgetall(keys.trip_status_counts("sf"))
        return int(counts.get("completed", 0)) + int(counts.get("expired", 0)) == len(trip_ids)

    loops = [asyncio.ensure_future(driver_loop(d)) for d in drivers]
    try:
        await eventually(all_done, timeout=60, interval=0.1,
                         message="timed out waiting for every trip served")
    finally:
        assigned.update(trip_ids)
        await asyncio.gather(*loops, return_exceptions=True)
    offers, peak = replay_offers(await rig.events())
    assert offers >= len(trip_ids) and peak > 1
    # Both dispatchers took part, and each acknowledges what it was handed
    # (the last trips' events may still be in hand when the trips are done).
    groups = await rig.redis.xinfo_consumers(keys.events("sf"), keys.GROUP_DISPATCH)
    assert len(groups) == 2

    async def nothing_pending():
        groups = await rig.redis.xinfo_consumers(keys.events("sf"), keys.GROUP_DISPATCH)
        return all(g["pending"] == 0 for g in groups)

    await eventually(nothing_pending, timeout=10, interval=0.05,
                     message="a dispatcher kept an event unacknowledged")
    await check_indexes(rig)


async def test_sweeper_against_accept(make_rig, rng):
    rig = await make_rig(offer_timeout_s=0.4, sweep_interval_s=0.002)
    for _ in range(ROUNDS):
        driver_id = await rig.new_driver(near())
        trip = await rig.request(near())
        await rig.offered(driver_id)
        expires_ms = (await rig.doc(trip["id"]))["offer"]["expires_ms"]
        seconds, micros = await rig.redis.time()
        now = seconds * 1000 + micros // 1000
        # Aim the accept at the deadline, from a little before to just after.
        await asyncio.sleep(max(expires_ms - now + rng.randint(-12, 4), 0) / 1000)
        r = await rig.accept(driver_id, trip["id"])
        types = await rig.types_of(trip["id"])
        if r.status == 200:
            assert "trip.offer_expired" not in types
            assert (await rig.doc(trip["id"]))["status"] == "assigned"
            await rig.act(driver_id, trip["id"], "cancel")
        else:
            assert r.status == 409

            async def expired_once():
                return (await rig.types_of(trip["id"])).count("trip.offer_expired") == 1

            await eventually(expired_once, timeout=5,
                             message="timed out waiting for the offer to expire")
            assert "trip.assigned" not in await rig.types_of(trip["id"])
        assert (await rig.types_of(trip["id"])).count("trip.offer_expired") <= 1
        # Retire the trip and the driver before the next round.
        await rig.cancel(trip["id"], trip["rider_id"])
        await eventually(lambda: _free(rig, driver_id), timeout=5,
                         message="timed out waiting for driver free")
        await rig.status(driver_id, "offline")
    await check_indexes(rig)


async def _free(rig, driver_id):
    d = await rig.driver_doc(driver_id)
    return d.get("offer") is None and d.get("trip_id") is None


async def test_decline_against_expiry(make_rig, rng):
    rig = await make_rig(offer_timeout_s=0.4, sweep_interval_s=0.002)
    for _ in range(ROUNDS):
        driver_id = await rig.new_driver(near())
        trip = await rig.request(near())
        await rig.offered(driver_id)
        expires_ms = (await rig.doc(trip["id"]))["offer"]["expires_ms"]
        seconds, micros = await rig.redis.time()
        now = seconds * 1000 + micros // 1000
        await asyncio.sleep(max(expires_ms - now + rng.randint(-12, 4), 0) / 1000)
        r = await rig.decline(driver_id, trip["id"])
        assert r.status in (204, 409)

        async def closed():
            types = await rig.types_of(trip["id"])
            return "trip.offer_declined" in types or "trip.offer_expired" in types

        await eventually(closed, timeout=5, message="timed out waiting for the offer to close")
        types = await rig.types_of(trip["id"])
        declined, expired = types.count("trip.offer_declined"), types.count("trip.offer_expired")
        assert declined + expired == 1
        assert (declined == 1) == (r.status == 204)
        doc = await rig.doc(trip["id"])
        assert doc["refused"] == [driver_id] and doc.get("offer") is None
        d = await rig.driver_doc(driver_id)
        assert d.get("offer") is None and d.get("supply_cell") is not None
        await rig.cancel(trip["id"], trip["rider_id"])
        await rig.status(driver_id, "offline")
    await check_indexes(rig)
    assert await rig.redis.hgetall(keys.supply("sf", "standard")) == {}


async def test_two_sweepers_expire_each_offer_once(make_rig):
    rig = await make_rig(Workers(sweeper=False), offer_timeout_s=0.1)
    store = rig.driver_app[STORE]
    drivers = [await rig.new_driver(near(0.001 * i)) for i in range(10)]
    trips = [await rig.request(near(0.001 * i)) for i in range(10)]
    # Offers last 0.1 s and no sweeper runs: wait for the dispatcher to have
    # made all ten (their deadlines), not for each driver to fetch one in time.
    async def all_offered():
        return len(await rig.redis.zrange(keys.offer_deadlines("sf"), 0, -1)) == 10

    await eventually(all_offered, timeout=5, message="timed out waiting for ten open offers")
    due = await rig.redis.zrange(keys.offer_deadlines("sf"), 0, -1)
    assert len(drivers) == len(due) == 10

    async def past():
        seconds, micros = await rig.redis.time()
        top = await rig.redis.zrange(keys.offer_deadlines("sf"), -1, -1, withscores=True)
        return seconds * 1000 + micros // 1000 >= top[0][1]

    await eventually(past, timeout=5, message="timed out waiting for deadlines due")
    results = await asyncio.gather(*(store.expire_offer(t) for t in due for _ in range(4)))
    assert results.count("expired") == 10
    for t in trips:
        assert (await rig.types_of(t["id"])).count("trip.offer_expired") == 1
    assert all(ids.is_id(t, ids.TRIP) for t in due)


class BatchDispatcher:
    """The dispatch consumer group driven by hand, a batch at a time; the
    entries are handed in turn to `dispatchers` dispatchers (two: as two
    replicas would, each knowing only its own offers in flight, so that
    only the offer script stands between their offers). Counts how many
    entries were handled at once."""

    def __init__(self, rig, dispatchers: int) -> None:
        self.rig = rig
        self.dispatchers = [rig.driver_app[DISPATCHER]] + [
            Dispatcher(rig.driver_app[STORE], rig.settings) for _ in range(dispatchers - 1)
        ]
        self.handed = 0
        self.running = self.most = 0
        self.consumer = StreamConsumer(
            rig.redis, keys.events("sf"), keys.GROUP_DISPATCH, "batch", self.handle,
            batch=100, claim_idle_ms=60_000, ordered_by=dispatch_order,
        )

    async def handle(self, entry) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        self.handed += 1
        try:
            await self.dispatchers[self.handed % len(self.dispatchers)].handle(entry)
        finally:
            self.running -= 1

    async def step(self) -> None:
        """Every entry not yet read, in one batch."""
        stream = keys.events("sf")
        await ensure_group(self.rig.redis, stream, keys.GROUP_DISPATCH)
        groups = {g["name"]: g for g in await self.rig.redis.xinfo_groups(stream)}
        unread = groups[keys.GROUP_DISPATCH]["lag"]
        assert await self.consumer.step() == unread


@pytest.mark.parametrize("dispatchers", [1, 2])
async def test_trips_dispatched_at_once_never_share_a_driver(make_rig, dispatchers):
    # Twelve trips and three drivers in one batch, every trip within reach
    # of every driver: the passes run at once reach for the same few drivers.
    rig = await make_rig(Workers(dispatch=False))
    drivers = [await rig.new_driver(near(0.001 * i)) for i in range(3)]
    trips = [await rig.request(near(0.0005 * i, 0.0005)) for i in range(12)]
    batch = BatchDispatcher(rig, dispatchers)
    await batch.step()
    assert batch.most > 2  # handled at once, not one after another
    offers, peak = replay_offers(await rig.events())
    assert offers == peak == 3
    # Each driver holds one of the trips, and each of those trips that offer.
    held = [(await rig.driver_doc(d))["offer"]["trip_id"] for d in drivers]
    assert len(set(held)) == 3 and set(held) <= {t["id"] for t in trips}
    for t in trips:
        offer = (await rig.doc(t["id"])).get("offer")
        assert (offer is not None) == (t["id"] in held)
        if offer is not None:
            assert drivers[held.index(t["id"])] == offer["driver_id"]
    await check_indexes(rig)


@pytest.mark.parametrize("dispatchers", [1, 2])
async def test_drivers_freed_at_once_never_share_a_trip(make_rig, dispatchers):
    # One trip waits, nobody in reach; then six drivers come online near it
    # and their events are handled at once: each pass offers the trip.
    rig = await make_rig(Workers(dispatch=False))
    trip = await rig.request(near())
    batch = BatchDispatcher(rig, dispatchers)
    await batch.step()
    drivers = [await rig.new_driver(near(0.0005 * i)) for i in range(6)]
    await batch.step()
    assert batch.most > 2
    offers, peak = replay_offers(await rig.events())
    assert offers == peak == 1
    offer = (await rig.doc(trip["id"]))["offer"]
    assert offer["driver_id"] in drivers
    for d in drivers:
        held = (await rig.driver_doc(d)).get("offer")
        assert (held is not None) == (d == offer["driver_id"])
    await check_indexes(rig)
