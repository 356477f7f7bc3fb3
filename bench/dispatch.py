"""Dispatch benchmark: trips offered per second with many drivers online, and
the latency from `trip.requested` to `trip.offered`.

    .venv/bin/python -m bench.dispatch [--drivers 2000] [--burst 1000]
                                       [--rate 50] [--seconds 10]

Starts its own embedded Redis (AOF `appendfsync always`, the default) and
trip_service and driver_service as real processes, registers drivers spread
over the default region, then:

1. burst: requests `--burst` trips as fast as the client can, and measures
   how fast the dispatcher offers them (offers per second, from the first
   request to the last offer, by the server's stream ids);
2. steady: requests trips at `--rate` per second for `--seconds`, with
   drivers to spare, and measures requested -> offered latency.

Before each phase the consumer groups are let catch up with the events of
the previous one (registrations, offers), so a phase measures itself.

Latencies come from the stream entry ids (server clock, ms), so client
scheduling does not colour them. Drivers never answer: each holds one offer.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import redis as redis_sync

from common import ids, keys
from common.scripts import load as load_functions
from common.embedded import EmbeddedRedis, free_port
from deploy.processes import ServiceProcess

REGION = "sf"
BOUNDS = (37.70, -122.52, 37.83, -122.35)
PRODUCT = "standard"


def _point(rng: random.Random) -> dict:
    return {"lat": round(rng.uniform(BOUNDS[0], BOUNDS[2]), 6),
            "lon": round(rng.uniform(BOUNDS[1], BOUNDS[3]), 6)}


async def _bounded(n: int, concurrency: int, make) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await make(i)

    await asyncio.gather(*(one(i) for i in range(n)))


async def register_drivers(http: aiohttp.ClientSession, url: str, n: int,
                           rng: random.Random) -> None:
    async def make(i: int) -> None:
        driver_id = ids.new_id(ids.DRIVER, REGION)
        body = {"driver_id": driver_id, "first_name": f"D{i}", "last_name": "Bench",
                "car": {"make": "Toyota", "model": "Prius", "color": "white",
                        "plate": f"B{i:06d}", "seats": 4}, "product": PRODUCT}
        async with http.post(f"{url}/internal/drivers", json=body) as r:
            assert r.status == 201, await r.text()
        async with http.put(f"{url}/internal/drivers/{driver_id}/location", json=_point(rng)) as r:
            assert r.status == 204, await r.text()
        async with http.post(f"{url}/internal/drivers/{driver_id}/status",
                             json={"status": "online"}) as r:
            assert r.status == 200, await r.text()

    await _bounded(n, 64, make)


async def request_trip(http: aiohttp.ClientSession, url: str, rng: random.Random) -> str:
    body = {"rider_id": ids.new_id(ids.RIDER, REGION), "pickup": _point(rng),
            "dropoff": _point(rng), "product": PRODUCT}
    async with http.post(f"{url}/internal/trips", json=body) as r:
        assert r.status == 201, await r.text()
        return (await r.json())["id"]


def _ms(stream_id: str) -> int:
    return int(stream_id.split("-")[0])


def collect(redis_url: str, trip_ids: set[str], timeout: float) -> tuple[dict, dict]:
    """Stream times of trip.requested and trip.offered for these trips,
    waiting until every trip is offered (or the timeout)."""
    client = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    requested: dict[str, int] = {}
    offered: dict[str, int] = {}
    last = "0-0"
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            rows = client.xrange(keys.events(REGION), min=f"({last}" if last != "0-0" else "-",
                                 count=5000)
            for sid, fields in rows:
                last = sid
                trip_id = fields.get("trip_id")
                if trip_id not in trip_ids:
                    continue
                if fields["type"] == "trip.requested":
                    requested[trip_id] = _ms(sid)
                elif fields["type"] == "trip.offered" and trip_id not in offered:
                    offered[trip_id] = _ms(sid)
            if len(offered) == len(trip_ids):
                break
            if not rows:
                time.sleep(0.05)
    finally:
        client.close()
    return requested, offered


def settle(redis_url: str, timeout: float = 120) -> float:
    """Wait until every consumer group has handled every entry (so a phase
    does not queue behind the previous one's events). Seconds waited."""
    client = redis_sync.Redis.from_url(redis_url, decode_responses=True)
    started = time.monotonic()
    try:
        while time.monotonic() - started < timeout:
            groups = client.xinfo_groups(keys.events(REGION))
            if groups and all(g["pending"] == 0 and not g.get("lag") for g in groups):
                break
            time.sleep(0.05)
    finally:
        client.close()
    return time.monotonic() - started


def summarize(name: str, requested: dict, offered: dict) -> dict:
    lat = sorted(offered[t] - requested[t] for t in offered if t in requested)
    span_ms = max(offered.values()) - min(requested.values()) if offered else 0
    out = {
        "phase": name,
        "trips": len(requested),
        "offered": len(offered),
        "span_s": round(span_ms / 1000, 3),
        "offers_per_s": round(len(offered) / (span_ms / 1000), 1) if span_ms else None,
        "latency_ms_median": statistics.median(lat) if lat else None,
        "latency_ms_p99": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
        "latency_ms_max": lat[-1] if lat else None,
    }
    return out


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    redis_server = EmbeddedRedis(work / "redis", port=free_port()).start()
    load_functions(redis_server.url)
    # The services answer only callers with the internal credential (common/internal.py).
    token = secrets.token_urlsafe(32)
    env = {"REDIS_URL": redis_server.url, "LOG_LEVEL": "WARNING", "INTERNAL_TOKEN": token,
           "OFFER_TIMEOUT_S": "600", "TRIP_EXPIRY_S": "900"}
    trips = ServiceProcess("trip_service", env, log_path=work / "trip_service.log")
    drivers = ServiceProcess("driver_service", env, log_path=work / "driver_service.log")
    try:
        trips.start(timeout=30)
        drivers.start(timeout=30)
        connector = aiohttp.TCPConnector(limit=128)
        async with aiohttp.ClientSession(connector=connector,
                                         headers={"Authorization": f"Bearer {token}"},
                                         json_serialize=lambda o: orjson.dumps(o).decode()) as http:
            started = time.perf_counter()
            await register_drivers(http, drivers.url, args.drivers, rng)
            print(f"{args.drivers} drivers online in {time.perf_counter() - started:.1f} s",
                  flush=True)
            waited = await asyncio.to_thread(settle, redis_server.url)
            print(f"their events handled by the consumer groups {waited:.1f} s later", flush=True)

            burst_ids: list[str] = []

            async def one(_: int) -> None:
                burst_ids.append(await request_trip(http, trips.url, rng))

            started = time.perf_counter()
            await _bounded(args.burst, 64, one)
            client_s = time.perf_counter() - started
            req, off = await asyncio.to_thread(collect, redis_server.url, set(burst_ids), 60)
            burst = summarize("burst", req, off)
            burst["client_requests_per_s"] = round(args.burst / client_s, 1)
            await asyncio.to_thread(settle, redis_server.url)

            steady_ids: list[str] = []
            n = int(args.rate * args.seconds)
            interval = 1 / args.rate
            tasks = []
            t0 = time.perf_counter()
            for i in range(n):
                delay = t0 + i * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(request_trip(http, trips.url, rng)))
            steady_ids = list(await asyncio.gather(*tasks))
            req, off = await asyncio.to_thread(collect, redis_server.url, set(steady_ids), 60)
            steady = summarize(f"steady {args.rate}/s", req, off)
        print()
        print(f"dispatch benchmark: {args.drivers} drivers online, product {PRODUCT}, "
              f"region {REGION}, Redis AOF appendfsync always")
        for row in (burst, steady):
            print(f"  {row['phase']:>12}: {row['offered']}/{row['trips']} offered in "
                  f"{row['span_s']} s -> {row['offers_per_s']} trips dispatched/s; "
                  f"requested->offered median {row['latency_ms_median']} ms, "
                  f"p99 {row['latency_ms_p99']} ms, max {row['latency_ms_max']} ms")
        print(f"  burst client: {burst['client_requests_per_s']} trip requests/s accepted")
        return 0 if burst["offered"] == burst["trips"] and steady["offered"] == steady["trips"] else 1
    finally:
        drivers.stop()
        trips.stop()
        redis_server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drivers", type=int, default=2000)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    if args.burst + args.rate * args.seconds > args.drivers:
        parser.error("need at least as many drivers as trips (drivers hold their offers)")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
