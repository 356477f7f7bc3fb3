"""Scenario 9: Redis memory per online driver and per waiting trip.

`python -m bench.memory [drivers] [trips] [--json]` (default 2,000 each) starts a
Redis of its own (the embedded default), seeds the drivers and then the
waiting trips through the services' own stores (`DriverStore.register/
update_location/go_online`, `TripStore.request`, one new rider per trip) and
prints, per driver and per trip, the `used_memory` delta and what each part
costs: MEMORY USAGE of each key of its own and its share of every shared key
(indexes, counters, the event stream). `bench/scale.py` (scenario 9 of
`make bench`) measures with the same functions.

The rest of the delta ("keyspace and other") is what no key's MEMORY USAGE
shows: the keyspace's own entries and allocator slack.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from common import ids, keys

REGION = "sf"
# Inner part of the default region, so searches are not cut by its edges.
BOUNDS = (37.715, -122.50, 37.815, -122.37)
CAR = {"make": "Toyota", "model": "Prius", "color": "white", "plate": "SCALE1", "seats": 4}
SAMPLE = 50


def point(rng: random.Random) -> tuple[float, float]:
    return (round(rng.uniform(BOUNDS[0], BOUNDS[2]), 6), round(rng.uniform(BOUNDS[1], BOUNDS[3]), 6))


async def used_memory(redis) -> int:
    """`used_memory` less the clients' buffers and the AOF buffer: those
    follow the seeding's connections and fsync, not the data kept."""
    info = await redis.info("memory")
    return int(info["used_memory"]) - sum(
        int(info.get(k, 0)) for k in ("mem_clients_normal", "mem_clients_slaves", "mem_aof_buffer")
    )


async def usage(redis, key: str) -> int:
    return int(await redis.memory_usage(key, samples=0) or 0)


async def _mean_usage(redis, key_names: list[str]) -> int | None:
    sizes = [await usage(redis, k) for k in key_names]
    return round(statistics.fmean(sizes)) if sizes else None


class Snapshot:
    """MEMORY USAGE of the shared keys, to charge each object its share."""

    def __init__(self, sizes: dict[str, int], used: int) -> None:
        self.sizes = sizes
        self.used = used

    @classmethod
    async def take(cls, redis, names: dict[str, str]) -> "Snapshot":
        return cls({n: await usage(redis, k) for n, k in names.items()}, await used_memory(redis))

    def share(self, later: "Snapshot", name: str, n: int) -> int:
        return round((later.sizes[name] - self.sizes[name]) / max(n, 1))


def driver_shared(product: str) -> dict[str, str]:
    return {
        "geo_index": keys.geo(REGION, product),
        "online_ids": keys.online_driver_ids(REGION),
        "supply": keys.supply(REGION, product),
        "online_counts": keys.online_driver_counts(REGION),
        "stream": keys.events(REGION),
    }


def trip_shared(product: str) -> dict[str, str]:
    return {
        "ranking": keys.pending(REGION, product),
        "pickups_geo": keys.pickups(REGION, product),
        "expiry": keys.expiry_deadlines(REGION),
        "active_trips": keys.active_trips(REGION),
        "demand": keys.demand(REGION, product),
        "status_counts": keys.trip_status_counts(REGION),
        "stream": keys.events(REGION),
    }


def _finish(parts: dict[str, int], delta: int, n: int) -> dict:
    per = round(delta / max(n, 1))
    parts["keyspace_and_other"] = per - sum(parts.values())
    return {"used_memory_b": per, "parts_b": parts}


async def driver_memory(redis, before: Snapshot, product: str, n: int) -> dict:
    """Per online driver, `before` taken before the `n` drivers were seeded."""
    after = await Snapshot.take(redis, driver_shared(product))
    some = await redis.zrange(keys.geo(REGION, product), 0, SAMPLE - 1)
    parts = {"document": await _mean_usage(redis, [keys.driver(d) for d in some]) or 0}
    for name in driver_shared(product):
        parts[name] = before.share(after, name, n)
    out = {"drivers": n, **_finish(parts, after.used - before.used, n)}
    # Compatibility with earlier results.json rows.
    out.update(used_memory_per_driver_b=out["used_memory_b"], document_b=parts["document"],
               geo_index_per_driver_b=parts["geo_index"], events_per_driver=2)
    return out


async def trip_memory(redis, before: Snapshot, product: str, n: int, rng: random.Random) -> dict:
    """Per waiting trip, `before` taken before the `n` trips were seeded. The
    documents are sampled over the whole ranking: trips at its head may have
    been offered (a longer event list)."""
    after = await Snapshot.take(redis, trip_shared(product))
    count = await redis.zcard(keys.pending(REGION, product))
    picks = sorted(rng.sample(range(count), min(SAMPLE, count)))
    some = [(await redis.zrange(keys.pending(REGION, product), i, i))[0] for i in picks]
    docs = [json.loads(await redis.execute_command("JSON.GET", keys.trip(t))) for t in some]
    riders = [d["rider_id"] for d in docs]
    parts = {
        "document": await _mean_usage(redis, [keys.trip(t) for t in some]) or 0,
        "event_list": await _mean_usage(redis, [keys.trip_events(t) for t in some]) or 0,
        "rider_active": await _mean_usage(redis, [keys.rider_active(r) for r in riders]) or 0,
        "rider_history": await _mean_usage(redis, [keys.rider_trips(r) for r in riders]) or 0,
    }
    for name in trip_shared(product):
        parts[name] = before.share(after, name, n)
    out = {"trips": n, **_finish(parts, after.used - before.used, n)}
    out.update(used_memory_per_trip_b=out["used_memory_b"], document_b=parts["document"],
               event_list_b=parts["event_list"])
    return out


async def seed_drivers(drivers, n: int, product: str, rng: random.Random, bounded) -> None:
    async def make(i: int) -> None:
        driver_id = ids.new_id(ids.DRIVER, REGION)
        await drivers.register(driver_id, "Scale", f"D{i}", CAR, product)
        lat, lon = point(rng)
        await drivers.update_location(driver_id, lat, lon, None, None)
        await drivers.go_online(driver_id)

    await bounded(n, make)


async def seed_trips(trips, drivers, n: int, product: str, rng: random.Random, bounded) -> None:
    async def make(i: int) -> None:
        rider = ids.new_id(ids.RIDER, REGION)
        lat, lon = point(rng)
        dlat, dlon = point(rng)
        doc = await trips.request(rider, product, {"lat": lat, "lon": lon},
                                  {"lat": dlat, "lon": dlon}, None)
        # What a running dispatcher learnt from the trip's request event.
        drivers.remember_trip(doc["id"], product, rider)

    await bounded(n, make)


def bounded_by(concurrency: int):
    async def bounded(n: int, make) -> None:
        sem = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with sem:
                await make(i)

        for start in range(0, n, 5000):
            await asyncio.gather(*(one(i) for i in range(start, min(n, start + 5000))))

    return bounded


def describe(what: str, m: dict) -> str:
    lines = [f"per {what}: {m['used_memory_b']:,} B of used_memory"]
    for name, b in m["parts_b"].items():
        lines.append(f"  {name:20s} {b:7,} B")
    return "\n".join(lines)


async def measure(n_drivers: int, n_trips: int, seed: int = 9) -> dict:
    from common.embedded import EmbeddedRedis, free_port
    from common.redisconn import create_redis
    from common.scripts import load as load_functions
    from driver_service.settings import DriverSettings
    from driver_service.store import DriverStore
    from trip_service.settings import TripSettings
    from trip_service.store import TripStore

    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="ridehail-memory-"))
    server = EmbeddedRedis(work / "redis", port=free_port()).start()
    try:
        load_functions(server.url)
        redis = create_redis(server.url, max_connections=40)
        try:
            await redis.config_set("appendfsync", "everysec")
            given = {"redis_url": server.url, "offer_timeout_s": 3600, "trip_expiry_s": 7200}
            drivers = DriverStore(redis, DriverSettings.from_env(env={}, **given))
            trips = TripStore(redis, TripSettings.from_env(env={}, **given))
            bounded = bounded_by(32)
            before = await Snapshot.take(redis, driver_shared("standard"))
            await seed_drivers(drivers, n_drivers, "standard", rng, bounded)
            out = {"drivers": await driver_memory(redis, before, "standard", n_drivers)}
            before = await Snapshot.take(redis, trip_shared("xl"))
            await seed_trips(trips, drivers, n_trips, "xl", rng, bounded)
            out["trips"] = await trip_memory(redis, before, "xl", n_trips, rng)
            return out
        finally:
            await redis.aclose()
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str]) -> int:
    as_json = "--json" in argv
    counts = [int(a) for a in argv if a != "--json"]
    n_drivers = counts[0] if counts else 2000
    n_trips = counts[1] if len(counts) > 1 else n_drivers
    result = asyncio.run(measure(n_drivers, n_trips))
    if as_json:
        print(json.dumps(result, indent=2))
        return 0
    print(describe(f"online driver ({n_drivers:,} seeded)", result["drivers"]))
    print(describe(f"waiting trip ({n_trips:,} seeded)", result["trips"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
