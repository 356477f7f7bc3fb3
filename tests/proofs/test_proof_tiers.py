"""Hot, warm, cold as real processes: a short soak in which Redis memory
stays flat while trips finish at a constant rate and go cold, every finished
trip still readable through the API; and kill -9 of trip_service while its
archiver is in the middle of a batch: each finished trip is afterwards in
Redis, in PostgreSQL or both, never in neither, and the restarted archiver
converges to cold only, each trip and event once.

(tests/services/test_tiers.py kills PostgreSQL between a batch's writes and
its commit.)"""

from __future__ import annotations

import asyncio
import time

import aiohttp
import asyncpg
import pytest

import redis as redis_sync
from common import keys
from common.events import trip_event_stream_id
from tests.client import driver_body, rider_body
from tests.proofs.support import (
    CENTER,
    around,
    proof_client,
    ready,
    record_figures,
    start_proof_system,
)
from tests.waiting import eventually

pytestmark = pytest.mark.slow

SOAK_S = 20.0
WARM_UP_S = 8.0
PAIRS = 6
# Before the archiver: about 14 KB of Redis per finished trip, for ever.
BEFORE_BYTES_PER_TRIP = 14_000


async def _signed_up(api, role: str, name: str) -> None:
    body = rider_body(name) if role == "rider" else driver_body(name)
    a = await api.post(f"/v1/{role}s", body)
    assert a.status == 201, a
    assert (await api.login(name)).status == 201


async def _pg_count(url: str, sql: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def soak_system(tmp_path_factory):
    s = start_proof_system(
        tmp_path_factory.mktemp("tiers-soak"),
        HOT_RETENTION_S="1", ARCHIVE_INTERVAL_S="0.2", STREAM_RETENTION_S="4",
        DISPATCH_RADIUS_M="400", OFFER_TIMEOUT_S="5",
    )
    yield s
    s.stop()


async def test_soak_redis_memory_stays_flat_as_trips_go_cold(soak_system):
    """Two rounds of traffic, each followed by a quiet moment in which the
    last trips go cold and the stream is trimmed: the memory Redis uses at
    the end of the second round against the first, per trip finished in
    between (quiet points: no sawtooth of in-flight trips and stream)."""
    ps = soak_system
    admin = redis_sync.Redis.from_url(ps.redis.url, decode_responses=True)
    finished: list[tuple[str, object]] = []  # (trip id, its rider's client)
    hot_trip_bytes: list[int] = []
    stream_entry_bytes: list[int] = []
    async with aiohttp.ClientSession() as http:
        await eventually(lambda: ready(ps.url, http), timeout=30)
        clients = await asyncio.gather(*(_pair_clients(http, ps.url, i) for i in range(PAIRS)))

        async def traffic(seconds: float) -> None:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(_pair(i, *clients[i], finished, stop))
                     for i in range(PAIRS)]
            done, _ = await asyncio.wait(tasks, timeout=seconds)
            stop.set()
            for task in done:
                task.result()  # a pair that failed fails the proof
            await asyncio.gather(*tasks)
            entries = admin.xlen(keys.events("sf"))
            if entries:
                stream_entry_bytes.append(round(
                    admin.memory_usage(keys.events("sf"), samples=0) / entries))
            # What one finished trip costs while hot: its document, events, deliveries.
            trip_id = finished[-1][0]
            items = admin.lrange(keys.trip_events(trip_id), 0, -1)
            if items:
                hot_trip_bytes.append(
                    (admin.memory_usage(keys.trip(trip_id)) or 0)
                    + (admin.memory_usage(keys.trip_events(trip_id)) or 0)
                    + sum(admin.memory_usage(keys.deliveries("sf", trip_event_stream_id(x)))
                          or 0 for x in items)
                )

        def quiet() -> bool:
            return (admin.zcard(keys.archive_due("sf")) == 0
                    and admin.xlen(keys.events("sf")) == 0)

        await traffic(WARM_UP_S)
        await eventually(quiet, timeout=30, interval=0.1, message="the warm-up to go cold")
        first = admin.info("memory")["used_memory"]
        before = len(finished)
        await traffic(SOAK_S)
        await eventually(quiet, timeout=30, interval=0.1, message="the soak to go cold")
        last = admin.info("memory")["used_memory"]
        soaked = len(finished) - before
        slope = (last - first) / soaked
        cold_trips = await _pg_count(ps.system.database_url, "SELECT count(*) FROM trips")
        # Every finished trip reads through the API, with its timeline, cold now.
        for trip_id, rider in finished:
            got = await rider.get(f"/v1/trips/{trip_id}")
            assert got.status == 200 and got.body["status"] in ("completed", "cancelled"), got
            timeline = await rider.get(f"/v1/trips/{trip_id}/timeline")
            assert timeline.status == 200, timeline
            assert timeline.body["events"][-1]["type"] in ("trip.completed", "trip.cancelled")
    admin.close()
    record_figures("tiers_soak", {
        "finished_trips": len(finished),
        "finished_per_s": round(soaked / SOAK_S, 2),
        "cold_trips_at_end": cold_trips,
        "redis_bytes_per_finished_trip": round(slope, 1),
        "before_bytes_per_finished_trip": BEFORE_BYTES_PER_TRIP,
        "redis_used_memory_first_last": [first, last],
        "bytes_per_hot_finished_trip": hot_trip_bytes,
        "bytes_per_stream_entry": stream_entry_bytes,
    })
    assert soaked >= 30  # enough trips to see a slope
    assert cold_trips == len(finished)  # PostgreSQL grew by every finished trip
    # Flat: a tenth of the old cost per trip would already be a visible
    # leak; `make bench` runs longer and reports the slope against 1%.
    assert slope < BEFORE_BYTES_PER_TRIP / 10, (slope, first, last, soaked)


async def _pair_clients(http, base: str, i: int):
    """A rider and an online driver alone in their spot of the city (farther
    from the other pairs than DISPATCH_RADIUS_M)."""
    place = around(CENTER, -0.04 + (i // 3) * 0.02, -0.04 + (i % 3) * 0.02)
    rider, drv = proof_client(http, base), proof_client(http, base)
    tag = f"{i}x{time.monotonic_ns() % 10**9}"
    await _signed_up(rider, "rider", f"soakr{tag}")
    await _signed_up(drv, "driver", f"soakd{tag}")
    assert (await drv.call("PUT", "/v1/driver/location", around(place, 0.0003))).status == 204
    assert (await drv.post("/v1/driver/status", {"status": "online"})).status == 200
    return place, rider, drv


async def _pair(i: int, place, rider, drv, finished: list, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        a = await rider.post("/v1/trips", {"pickup": place, "dropoff": around(place, 0.004),
                                           "product": "standard"})
        assert a.status == 201, a
        trip_id = a.body["id"]
        if n % 3 == 0:  # every third is cancelled by its rider
            c = await rider.post(f"/v1/trips/{trip_id}/cancel", {})
            assert c.status == 200, c
        else:
            offer = await drv.get("/v1/driver/offers/next", params={"wait": "5"})
            assert offer.status == 200 and offer.body["trip_id"] == trip_id, offer
            assert (await drv.post(f"/v1/driver/offers/{trip_id}/accept")).status == 200
            for action in ("arrive", "start", "complete"):
                step = await drv.post(f"/v1/trips/{trip_id}/{action}")
                assert step.status == 200, step
        finished.append((trip_id, rider))


@pytest.fixture(scope="module")
def kill_system(tmp_path_factory):
    s = start_proof_system(
        tmp_path_factory.mktemp("tiers-kill"),
        HOT_RETENTION_S="3600", ARCHIVE_INTERVAL_S="0.05", ARCHIVE_BATCH="10",
        ARCHIVE_LEASE_S="2",
    )
    yield s
    s.stop()


async def test_trip_service_killed_mid_batch_loses_and_doubles_nothing(kill_system):
    ps = kill_system
    url = ps.system.database_url
    admin = redis_sync.Redis.from_url(ps.redis.url, decode_responses=True)
    trip_ids: list[str] = []
    async with aiohttp.ClientSession() as http:
        await eventually(lambda: ready(ps.url, http), timeout=30)

        async def rider(i: int) -> None:
            api = proof_client(http, ps.url)
            await _signed_up(api, "rider", f"killr{i}x{time.monotonic_ns() % 10**9}")
            for _ in range(8):
                a = await api.post("/v1/trips", {"pickup": CENTER, "dropoff": around(
                    CENTER, 0.004), "product": "standard"})
                assert a.status == 201, a
                c = await api.post(f"/v1/trips/{a.body['id']}/cancel", {})
                assert c.status == 200, c
                trip_ids.append(a.body["id"])

        await asyncio.gather(*(rider(i) for i in range(20)))
        due = keys.archive_due("sf")
        await eventually(lambda: admin.zcard(due) == len(trip_ids), timeout=20,
                         message="every finished trip scheduled")
        # A day passes for all of them at once: batch after batch is due.
        admin.zadd(due, {t: 0 for t in trip_ids}, xx=True)
        watch = await asyncpg.connect(url)  # one connection: polled as fast as it answers
        try:
            await eventually(lambda: watch.fetchval("SELECT count(*) FROM trips"), timeout=20,
                             interval=0.001, message="a first batch committed")
            ps.system.trips[0].kill()
        finally:
            await watch.close()

        hot = {t for t in trip_ids if admin.exists(keys.trip(t))}
        cold = set(await _cold_ids(url, trip_ids))
        neither = [t for t in trip_ids if t not in hot and t not in cold]
        both = [t for t in trip_ids if t in hot and t in cold]
        assert not neither, f"lost: {neither}"
        assert hot, "the kill came after the archiver had finished: nothing shown"

        ps.system.trips[0].start()
        await eventually(lambda: ready(ps.url, http), timeout=30)

        def converged():
            return not any(admin.exists(keys.trip(t)) for t in trip_ids)

        await eventually(converged, timeout=60, interval=0.1, message="all trips cold")
        cold_after = await _cold_ids(url, trip_ids)
        events = await _pg_count(
            url, f"SELECT count(*) FROM trip_events WHERE trip_id IN ({_quoted(trip_ids)})"
        )
        assert admin.zcard(due) == 0
    admin.close()
    record_figures("tiers_kill_archiver", {
        "finished_trips": len(trip_ids),
        "hot_only_at_kill": len(hot - cold),
        "in_both_at_kill": len(both),
        "cold_only_at_kill": len(cold - hot),
    })
    assert sorted(cold_after) == sorted(trip_ids)
    assert events == 2 * len(trip_ids)  # requested and cancelled, each once


def _quoted(trip_ids: list[str]) -> str:
    return ",".join(f"'{t}'" for t in trip_ids)  # our own ids: [a-z0-9_] only


async def _cold_ids(url: str, trip_ids: list[str]) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT id FROM trips WHERE id = ANY($1)", trip_ids)
    finally:
        await conn.close()
    return [r["id"] for r in rows]
