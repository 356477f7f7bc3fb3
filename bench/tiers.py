"""`make bench`, hot, warm, cold: what Redis keeps per finished trip once trips
go cold, how fast the archiver moves them, and what a cold read costs.

    python -m bench.tiers          # BENCH_QUICK=1 for a short run

1. Soak: rider/driver pairs finish trips through the public API as fast as
   they can (every third cancelled) with a short HOT_RETENTION_S; Redis's
   `used_memory` at two quiet points (every trip cold, the stream trimmed),
   per trip finished in between: the slope, against ~14 KB before.
2. Cold reads: GET /v1/trips/{id} of cold trips and GET /v1/trips (a page of
   20 from a rider's cold history), p50/p99.
3. Archive rate: a backlog of finished trips all due at once, moved by one
   archiver (in this process, on the same kind of servers): trips/s.

Prints a table and writes bench/tiers.json (BENCH_OUT names the folder).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

import redis as redis_sync
from common import ids, keys
from common.events import trip_event_stream_id
from common.embedded import EmbeddedRedis, free_port
from common.embedded_pg import EmbeddedPostgres
from common.redisconn import create_redis
from tests.client import ApiClient, driver_body, rider_body
from tests.harness import System
from trip_service.archiver import Archiver
from trip_service.coldstore import ColdStore, open_pool
from trip_service.settings import TripSettings
from trip_service.store import TripStore

HERE = Path(__file__).resolve().parent
BEFORE_BYTES_PER_TRIP = 14_000
CENTER = {"lat": 37.7749, "lon": -122.4194}
ENV = {
    "HOT_RETENTION_S": "2", "ARCHIVE_INTERVAL_S": "0.2", "STREAM_RETENTION_S": "5",
    "DISPATCH_RADIUS_M": "400", "OFFER_TIMEOUT_S": "5", "RATE_LIMIT_PER_TOKEN": "0",
    "ARGON2_TIME_COST": "1", "ARGON2_MEMORY_KIB": "1024", "LOG_LEVEL": "WARNING",
    "OPS_USER_NAME": "ops", "OPS_PASSWORD": "ops-password-for-bench",
}


def say(message: str) -> None:
    print(f"[bench.tiers] {message}", flush=True)


def around(p: dict, d_lat: float = 0.0, d_lon: float = 0.0) -> dict:
    return {"lat": round(p["lat"] + d_lat, 6), "lon": round(p["lon"] + d_lon, 6)}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _client(http, base: str, role: str, name: str) -> ApiClient:
    api = ApiClient(http, base, timeout=10.0)
    body = rider_body(name) if role == "rider" else driver_body(name)
    assert (await api.post(f"/v1/{role}s", body)).status == 201
    assert (await api.login(name)).status == 201
    return api


async def _pair(http, base: str, i: int):
    place = around(CENTER, -0.04 + (i // 4) * 0.02, -0.06 + (i % 4) * 0.02)
    tag = f"{i}x{time.monotonic_ns() % 10**9}"
    rider = await _client(http, base, "rider", f"benchr{tag}")
    drv = await _client(http, base, "driver", f"benchd{tag}")
    assert (await drv.call("PUT", "/v1/driver/location", around(place, 0.0003))).status == 204
    assert (await drv.post("/v1/driver/status", {"status": "online"})).status == 200
    return place, rider, drv


async def _drive(place, rider, drv, finished: list, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        a = await rider.post("/v1/trips", {"pickup": place, "dropoff": around(place, 0.004),
                                           "product": "standard"})
        assert a.status == 201, a
        trip_id = a.body["id"]
        if n % 3 == 0:
            assert (await rider.post(f"/v1/trips/{trip_id}/cancel", {})).status == 200
        else:
            offer = await drv.get("/v1/driver/offers/next", params={"wait": "5"})
            assert offer.status == 200 and offer.body["trip_id"] == trip_id, offer
            assert (await drv.post(f"/v1/driver/offers/{trip_id}/accept")).status == 200
            for action in ("arrive", "start", "complete"):
                assert (await drv.post(f"/v1/trips/{trip_id}/{action}")).status == 200
        finished.append((trip_id, rider))


async def soak_and_reads(system: System, admin_url: str, soak_s: float, warm_s: float,
                         pairs: int, reads: int) -> dict:
    admin = redis_sync.Redis.from_url(admin_url, decode_responses=True)
    finished: list = []
    hot_bytes: list[int] = []

    def quiet() -> bool:
        return admin.zcard(keys.archive_due("sf")) == 0 and admin.xlen(keys.events("sf")) == 0

    async def wait_quiet() -> None:
        deadline = time.monotonic() + 120
        while not quiet():
            if time.monotonic() > deadline:
                raise RuntimeError("the system did not go quiet")
            await asyncio.sleep(0.1)

    async with aiohttp.ClientSession() as http:
        clients = await asyncio.gather(*(_pair(http, system.url, i) for i in range(pairs)))

        async def traffic(seconds: float) -> None:
            stop = asyncio.Event()
            tasks = [asyncio.create_task(_drive(*clients[i], finished, stop))
                     for i in range(pairs)]
            done, _ = await asyncio.wait(tasks, timeout=seconds)
            stop.set()
            for task in done:
                task.result()
            await asyncio.gather(*tasks)
            trip_id = finished[-1][0]
            items = admin.lrange(keys.trip_events(trip_id), 0, -1)
            if items:
                hot_bytes.append(
                    (admin.memory_usage(keys.trip(trip_id)) or 0)
                    + (admin.memory_usage(keys.trip_events(trip_id)) or 0)
                    + sum(admin.memory_usage(keys.deliveries("sf", trip_event_stream_id(x)))
                          or 0 for x in items))

        say(f"warm-up {warm_s:.0f} s ...")
        await traffic(warm_s)
        await wait_quiet()
        first = admin.info("memory")["used_memory"]
        before = len(finished)
        say(f"soak {soak_s:.0f} s ...")
        await traffic(soak_s)
        await wait_quiet()
        last = admin.info("memory")["used_memory"]
        soaked = len(finished) - before
        say("cold reads ...")
        trip_ms: list[float] = []
        page_ms: list[float] = []
        sample = finished[:: max(1, len(finished) // reads)][:reads]
        for trip_id, rider in sample:
            t0 = time.perf_counter()
            got = await rider.get(f"/v1/trips/{trip_id}")
            trip_ms.append((time.perf_counter() - t0) * 1000)
            assert got.status == 200, got
        riders = [c[1] for c in clients]
        for i in range(reads):
            rider = riders[i % len(riders)]
            t0 = time.perf_counter()
            page = await rider.get("/v1/trips", params={"limit": "20"})
            page_ms.append((time.perf_counter() - t0) * 1000)
            assert page.status == 200 and len(page.body["items"]) == 20, page
    admin.close()
    return {
        "finished_trips": len(finished),
        "soak_trips": soaked,
        "finished_per_s": round(soaked / soak_s, 2),
        "redis_bytes_per_finished_trip": round((last - first) / soaked, 1),
        "redis_used_memory_first_last": [first, last],
        "bytes_per_hot_finished_trip": round(statistics.mean(hot_bytes)) if hot_bytes else None,
        "cold_trip_read_ms": {"p50": round(pct(trip_ms, 0.5), 2),
                              "p99": round(pct(trip_ms, 0.99), 2)},
        "cold_history_page_ms": {"p50": round(pct(page_ms, 0.5), 2),
                                 "p99": round(pct(page_ms, 0.99), 2)},
    }


async def archive_rate(redis_url: str, database_url: str, backlog: int) -> dict:
    """One archiver moving `backlog` finished trips (requested and cancelled,
    all due at once), in batches of 100."""
    redis = create_redis(redis_url)
    pool = await open_pool(database_url)
    settings = TripSettings.from_env(env={}, hot_retention_s=0.0, archive_batch=100)
    try:
        store = TripStore(redis, settings, ColdStore(pool))
        sem = asyncio.Semaphore(32)

        async def one() -> str:
            async with sem:
                rider = ids.new_id(ids.RIDER, "sf")
                trip = await store.request(rider, "standard", CENTER, around(CENTER, 0.004),
                                           None)
                await store.cancel(trip["id"], rider, None)
                return trip["id"]

        trip_ids = await asyncio.gather(*(one() for _ in range(backlog)))
        await redis.zadd(keys.archive_due("sf"), {t: 0 for t in trip_ids})
        archiver = Archiver(redis, store.scripts, store.cold, settings)
        t0 = time.perf_counter()
        moved = 0
        while moved < backlog:
            step = await archiver.pass_once()
            if step == 0:
                raise RuntimeError(f"the archiver stopped at {moved} of {backlog}")
            moved += step
        elapsed = time.perf_counter() - t0
    finally:
        await pool.close()
        await redis.aclose()
    return {"backlog": backlog, "seconds": round(elapsed, 2),
            "trips_per_s": round(backlog / elapsed, 1)}


def main() -> int:
    quick = os.environ.get("BENCH_QUICK", "0") not in ("", "0")
    soak_s, warm_s, pairs, reads, backlog = (
        (15.0, 8.0, 4, 50, 500) if quick else (120.0, 20.0, 8, 400, 5000)
    )
    out_dir = Path(os.environ.get("BENCH_OUT") or HERE)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ridehail-bench-tiers-"))
    work.chmod(0o711)  # PostgreSQL runs as `nobody` under root
    redis = EmbeddedRedis(work / "redis", free_port()).start()
    system = System(redis.url, work, env=ENV)
    results: dict = {}
    try:
        system.start()
        results["soak"] = asyncio.run(
            soak_and_reads(system, redis.url, soak_s, warm_s, pairs, reads)
        )
    finally:
        system.stop()
        redis.stop()
    # The archive rate on fresh servers of its own.
    redis = EmbeddedRedis(work / "redis2", free_port()).start()
    pg = EmbeddedPostgres(work / "pg2", free_port()).start()
    try:
        say(f"archive rate: a backlog of {backlog} trips ...")
        results["archive"] = asyncio.run(archive_rate(redis.url, pg.url, backlog))
    finally:
        pg.stop()
        redis.stop()
        shutil.rmtree(work, ignore_errors=True)
    s, a = results["soak"], results["archive"]
    rows = [
        ("Redis bytes per finished trip (after warm-up)",
         f"{s['redis_bytes_per_finished_trip']:.0f} (before: ~{BEFORE_BYTES_PER_TRIP:,}; "
         f"target < {BEFORE_BYTES_PER_TRIP // 100})"),
        ("finished trips in the soak", f"{s['soak_trips']} ({s['finished_per_s']}/s)"),
        ("bytes per hot finished trip", f"{s['bytes_per_hot_finished_trip']}"),
        ("archive rate", f"{a['trips_per_s']} trips/s ({a['backlog']} in {a['seconds']} s)"),
        ("cold trip read p50 / p99",
         f"{s['cold_trip_read_ms']['p50']} / {s['cold_trip_read_ms']['p99']} ms"),
        ("cold history page (20) p50 / p99",
         f"{s['cold_history_page_ms']['p50']} / {s['cold_history_page_ms']['p99']} ms"),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")
    results["mode"] = "quick" if quick else "full"
    (out_dir / "tiers.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    say(f"results in {out_dir / 'tiers.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
