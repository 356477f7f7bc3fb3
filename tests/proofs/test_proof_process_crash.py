"""kill -9 of a dispatcher and of each service in the middle of work, as real
processes behind the real gateway.

After the restart every pending trip is offered, none is offered twice at
once nor assigned twice, no driver holds two trips, every event is handled
or dead-lettered (both consumer groups drain to zero lag and zero pending,
XINFO GROUPS), and what clients saw acknowledged is all there and consistent
(the checker of the Redis crash proof).

(tests/services/test_crash.py kills a bare driver_service next to in-process
apps; this is the system-level version, through the public API.)
"""

from __future__ import annotations

import asyncio
import random

import aiohttp
import pytest

from common import keys
from common.redisconn import create_redis
from tests.proofs.checker import check, existing, groups_drained, stream_invariants
from tests.proofs.load import Ledger, Load
from tests.client import ApiClient, driver_body, rider_body
from tests.proofs.support import (
    CENTER,
    ProofSystem,
    around,
    proof_client,
    ready,
    record_figures,
    start_proof_system,
)
from tests.waiting import eventually

pytestmark = pytest.mark.slow

TRIPS = 40


@pytest.fixture(scope="module")
def proc_system(tmp_path_factory):
    s = start_proof_system(tmp_path_factory.mktemp("process-crash"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def tally() -> dict:
    return {}


async def _offered(redis) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, f in await redis.xrange(keys.events("sf")):
        if f["type"] == "trip.offered":
            counts[f["trip_id"]] = counts.get(f["trip_id"], 0) + 1
    return counts


async def _signed_in(http, base: str, role: str, n: int) -> list[ApiClient]:
    async def one(i: int) -> ApiClient:
        api = proof_client(http, base)
        name = f"{role[0]}{i}x{random.randrange(1 << 30):x}"
        body = rider_body(name) if role == "rider" else driver_body(name)
        a = await api.post(f"/v1/{role}s", body)
        assert a.status == 201, a
        assert (await api.login(name)).status == 201
        return api

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def test_a_dispatcher_killed_with_entries_in_hand(proc_system, tally):
    ps = proc_system
    dispatcher = ps.system.drivers[0]
    redis = create_redis(ps.redis.url)
    try:
        async with aiohttp.ClientSession() as http:
            drivers = await _signed_in(http, ps.url, "driver", TRIPS)
            for i, d in enumerate(drivers):
                spot = around(CENTER, 0.0008 * (i % 8), 0.0008 * (i // 8))
                assert (await d.call("PUT", "/v1/driver/location", spot)).status == 204
                assert (await d.post("/v1/driver/status", {"status": "online"})).status == 200
            # The trips wait in the stream while no dispatcher runs.
            await asyncio.to_thread(dispatcher.stop)
            riders = await _signed_in(http, ps.url, "rider", TRIPS)
            trips = []
            for i, r in enumerate(riders):
                pickup = around(CENTER, 0.0004 * (i % 10), 0.0004 * (i // 10))
                a = await r.post("/v1/trips", {"pickup": pickup, "dropoff": around(pickup, 0.01),
                                               "product": "standard"})
                assert a.status == 201, a
                trips.append(a.body["id"])
            want = set(trips)
            # The dispatcher comes back, takes a batch, and dies at its first offer.
            await asyncio.to_thread(dispatcher.start)
            await eventually(lambda: _offered(redis), timeout=20, interval=0.003,
                             message="the dispatcher never offered")
            dispatcher.kill()
            consumers = await redis.xinfo_consumers(keys.events("sf"), keys.GROUP_DISPATCH)
            in_hand = sum(c["pending"] for c in consumers)
            offered_at_kill = len(await _offered(redis))
            assert in_hand > 0, "the dispatcher was killed with nothing in hand"
            assert offered_at_kill < TRIPS
            await asyncio.to_thread(dispatcher.start)  # a new consumer name: it must reclaim

            async def all_offered():
                return set(await _offered(redis)) >= want

            await eventually(all_offered, timeout=30, interval=0.1,
                             message="not every pending trip was offered after the restart")
            # Every driver takes what it was offered: each trip assigned once.
            async def take(d: ApiClient) -> str | None:
                a = await d.get("/v1/driver/offers/next", params={"wait": "2"})
                if a.status != 200:
                    return None
                acc = await d.post(f"/v1/driver/offers/{a.body['trip_id']}/accept")
                return a.body["trip_id"] if acc.status == 200 else None

            assigned: set[str] = set()

            async def everyone_assigned():
                got = await asyncio.gather(*(take(d) for d in drivers))
                assigned.update(t for t in got if t)
                return assigned >= want

            await eventually(everyone_assigned, timeout=60, interval=0.1,
                             message="not every trip was assigned")
            for r, trip_id in zip(riders, trips):
                got = await r.get(f"/v1/trips/{trip_id}")
                assert got.status == 200 and got.body["status"] == "assigned", got
        groups = await eventually(lambda: groups_drained(redis), timeout=30, interval=0.1,
                                  message="consumer groups did not drain")
        counts, problems = stream_invariants(await redis.xrange(keys.events("sf")))
        assert not problems, problems[:10]
        assert counts["assignments"] == TRIPS
        dead = await redis.xlen(keys.dead_letters("sf"))
        record_figures("dispatcher_kill_9", {
            "trips": TRIPS,
            "entries_in_hand_at_kill": in_hand,
            "offered_before_kill": offered_at_kill,
            "offers": counts["offers"],
            "assignments": counts["assignments"],
            "dead_letters": dead,
            "groups": {g["name"]: {"lag": g["lag"], "pending": g["pending"]} for g in groups},
        })
    finally:
        await redis.aclose()


SERVICES = ["trip_service", "driver_service", "gateway"]


def _process(ps: ProofSystem, name: str):
    return {"trip_service": ps.system.trips[0], "driver_service": ps.system.drivers[0],
            "gateway": ps.system.gateway}[name]


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_killed_under_load(proc_system, tally, service):
    ps = proc_system
    ledger = Ledger()
    rng = random.Random(hash(service) & 0xFFFF)
    load = Load(ps.url, ledger, rng, riders=8, drivers=5)
    proc = _process(ps, service)
    redis = create_redis(ps.redis.url)
    try:
        ledger.preexisting = await existing(redis)
        await load.start()
        try:
            await eventually(lambda: ledger.acked_writes >= 40, timeout=60, interval=0.05,
                             message="the load did not start")
            await asyncio.sleep(rng.uniform(0.0, 1.5))  # a random kill point
            proc.kill()
            await asyncio.to_thread(proc.start)
            async with aiohttp.ClientSession() as http:
                await eventually(lambda: ready(ps.url, http), timeout=30, interval=0.1,
                                 message=f"not ready after {service} came back")
            after = ledger.acked_writes
            await eventually(lambda: ledger.acked_writes >= after + 40, timeout=60,
                             interval=0.05, message=f"no progress after {service} came back")
        finally:
            await load.finish()
        report = await check(redis, ledger)
        assert report.clean, report.details()
        groups = await eventually(lambda: groups_drained(redis), timeout=30, interval=0.1,
                                  message="consumer groups did not drain")
        counts, problems = stream_invariants(await redis.xrange(keys.events("sf")))
        assert not problems, problems[:10]
        # Every trip still waiting was offered: the load's drivers are online
        # and idle now, so nothing may sit in the ranking undispatched.
        async def waiting_all_offered():
            waiting = set(await redis.zrange(keys.pending("sf", "standard"), 0, -1))
            return waiting <= set(await _offered(redis))

        await eventually(waiting_all_offered, timeout=20, interval=0.1,
                         message="a waiting trip was never offered")
        dead = await redis.xlen(keys.dead_letters("sf"))
        dead_entries = await redis.xrange(keys.dead_letters("sf"))
        tally[service] = {
            "acknowledged_writes_checked": report.checked,
            "lost": len(report.lost),
            "inconsistent": len(report.inconsistent),
            "client_calls_failed": ledger.failures,
            "offers_so_far": counts["offers"],
            "assignments_so_far": counts["assignments"],
            "dead_letters": dead,
            "dead_letter_reasons": sorted({e[1].get("reason", "")[:80] for e in dead_entries}),
            "groups_drained": [g["name"] for g in groups],
        }
        record_figures("service_kill_9", tally)
    finally:
        await redis.aclose()
