"""Scenarios 8 and 9: dispatch cost against scale, and memory per object.

On a Redis of its own (the embedded default: AOF `appendfsync always`),
seeded directly through the services' own stores and scripts
(`DriverStore.register/go_online/update_location`, `TripStore.request`):

- a new trip: the dispatcher's handler for its `trip.requested` event,
  timed from the call to the offer made (choose the nearest driver, offer),
  with 1,000, 10,000 and 100,000 online drivers spread over the region;
  beside it a fixed 3 km GEOSEARCH at the same sizes, for reference;
- a driver who becomes available: the handler for `driver.online`, timed to
  the offer of the oldest waiting trip near them, with 100 and 10,000 trips
  waiting (of a product whose other drivers are all busy, so the freed
  driver is the one who gets it);
- memory: `used_memory` deltas per driver and per trip, with MEMORY USAGE of
  each part (bench/memory.py, which `python -m bench.memory` runs alone).

Seeding runs with `appendfsync everysec` to be quick; every measurement runs
with `always`. After each sample the state is put back (the offer declined,
the trip cancelled or the driver offline), untimed, so every sample sees the
same sizes.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import ids, keys
from common.scripts import load as load_functions
from common.embedded import EmbeddedRedis, free_port
from common.redisconn import create_redis
from common.streams import Entry
from driver_service.settings import DriverSettings
from trip_service.settings import TripSettings

from . import memory
from .memory import CAR, REGION, point as _point

SEED_CONCURRENCY = 64


@dataclass
class Sample:
    kind: str          # "drivers" | "pending" | "geosearch_3km"
    n: int
    times_ms: list[float] = field(default_factory=list)
    offers: int = 0
    errors: int = 0
    # No offer, rightly: nothing waited within DISPATCH_RADIUS_M of the driver.
    out_of_reach: int = 0

    @property
    def p50(self) -> float:
        return statistics.median(self.times_ms) if self.times_ms else 0.0

    @property
    def p99(self) -> float:
        if not self.times_ms:
            return 0.0
        s = sorted(self.times_ms)
        return s[min(len(s) - 1, int(len(s) * 0.99))]

    def as_dict(self) -> dict:
        return {"kind": self.kind, "n": self.n, "samples": len(self.times_ms),
                "p50_ms": round(self.p50, 3), "p99_ms": round(self.p99, 3),
                "mean_ms": round(statistics.fmean(self.times_ms), 3) if self.times_ms else 0.0,
                "offers": self.offers, "errors": self.errors,
                "out_of_reach": self.out_of_reach}


class ScaleBench:
    def __init__(self, work_dir: Path, samples: int, rng: random.Random) -> None:
        self.work_dir = work_dir
        self.samples = samples
        self.rng = rng
        self.server: EmbeddedRedis | None = None
        self.memory: dict = {}

    async def run(self, driver_counts: tuple[int, ...], pending_counts: tuple[int, ...],
                  log=print) -> list[Sample]:
        from driver_service.dispatcher import Dispatcher
        from driver_service.store import DriverStore
        from trip_service.store import TripStore

        self.server = EmbeddedRedis(self.work_dir / "scale-redis", port=free_port()).start()
        load_functions(self.server.url)
        redis = create_redis(self.server.url, max_connections=SEED_CONCURRENCY + 8)
        given = {"redis_url": self.server.url, "offer_timeout_s": 3600, "trip_expiry_s": 7200}
        settings = DriverSettings.from_env(env={}, **given)
        self.redis = redis
        self.drivers = DriverStore(redis, settings)
        self.trips = TripStore(redis, TripSettings.from_env(env={}, **given))
        self.dispatcher = Dispatcher(self.drivers, settings)
        out: list[Sample] = []
        try:
            online = 0
            # Memory (scenario 9) with bench/memory.py's functions, over the
            # last seeding alone: the samples between seedings leave trips
            # and drivers of their own behind.
            for n in driver_counts:
                last = n == driver_counts[-1]
                before = await memory.Snapshot.take(redis, memory.driver_shared("standard"))
                t0 = time.monotonic()
                await self._seed_drivers(n - online, "standard")
                log(f"scale: {n:,} drivers online (seeded in {time.monotonic() - t0:.0f} s)")
                if last:
                    self.memory["drivers"] = await memory.driver_memory(
                        redis, before, "standard", n - online)
                online = n
                out.append(await self._geosearch_3km(n))
                out.append(await self._new_trip_samples(n))
            waiting = 0
            for n in pending_counts:
                last = n == pending_counts[-1]
                before = await memory.Snapshot.take(redis, memory.trip_shared("xl"))
                t0 = time.monotonic()
                await self._seed_pending(n - waiting, "xl")
                log(f"scale: {n:,} trips waiting (seeded in {time.monotonic() - t0:.0f} s)")
                if last:
                    self.memory["trips"] = await memory.trip_memory(
                        redis, before, "xl", n - waiting, self.rng)
                waiting = n
                out.append(await self._freed_driver_samples(n, "xl"))
        finally:
            await redis.aclose()
            self.server.stop()
        return out

    # --- seeding ------------------------------------------------------------
    async def _fsync(self, mode: str) -> None:
        await self.redis.config_set("appendfsync", mode)

    async def _bounded(self, n: int, make) -> None:
        sem = asyncio.Semaphore(SEED_CONCURRENCY)

        async def one(i: int) -> None:
            async with sem:
                await make(i)

        for start in range(0, n, 5000):
            await asyncio.gather(*(one(i) for i in range(start, min(n, start + 5000))))

    async def _seed_drivers(self, n: int, product: str) -> None:
        await self._fsync("everysec")
        try:
            await memory.seed_drivers(self.drivers, n, product, self.rng, self._bounded)
        finally:
            await self._fsync("always")

    async def _seed_pending(self, n: int, product: str) -> None:
        await self._fsync("everysec")
        try:
            await memory.seed_trips(self.trips, self.drivers, n, product, self.rng, self._bounded)
        finally:
            await self._fsync("always")

    async def _waiting_in_reach(self, product: str, lat: float, lon: float) -> bool:
        found = await self.redis.geosearch(
            keys.pickups(REGION, product), longitude=lon, latitude=lat,
            radius=self.dispatcher.settings.dispatch_radius_m, unit="m", count=1,
        )
        return bool(found)

    async def _last_event(self, type_: str) -> Entry:
        rows = await self.redis.xrevrange(keys.events(REGION), count=1)
        sid, fields = rows[0]
        if fields.get("type") != type_:
            raise RuntimeError(f"expected {type_}, the stream's last event is {fields.get('type')}")
        return Entry(keys.events(REGION), sid, fields)

    # --- measurements -------------------------------------------------------
    async def _geosearch_3km(self, n: int) -> Sample:
        sample = Sample("geosearch_3km", n)
        key = keys.geo(REGION, "standard")
        for _ in range(self.samples):
            lat, lon = _point(self.rng)
            t0 = time.perf_counter()
            await self.redis.geosearch(key, longitude=lon, latitude=lat, radius=3000, unit="m",
                                       sort="ASC", count=8, withdist=True)
            sample.times_ms.append((time.perf_counter() - t0) * 1000)
        return sample

    async def _new_trip_samples(self, n: int) -> Sample:
        """A trip is requested; the dispatcher's handler offers it."""
        sample = Sample("drivers", n)
        for _ in range(self.samples):
            rider = ids.new_id(ids.RIDER, REGION)
            lat, lon = _point(self.rng)
            doc = await self.trips.request(rider, "standard", {"lat": lat, "lon": lon},
                                           {"lat": 37.79, "lon": -122.41}, None)
            entry = await self._last_event("trip.requested")
            t0 = time.perf_counter()
            await self.dispatcher.handle(entry)
            sample.times_ms.append((time.perf_counter() - t0) * 1000)
            trip = await self.drivers.trip_doc(doc["id"])
            holder = ((trip or {}).get("offer") or {}).get("driver_id")
            if holder:
                sample.offers += 1
                await self.drivers.decline(holder, doc["id"])
            else:
                sample.errors += 1
            await self.trips.cancel(doc["id"], rider, None)
        return sample

    async def _freed_driver_samples(self, n: int, product: str) -> Sample:
        """A driver becomes available; the handler offers them the oldest
        waiting trip within reach."""
        sample = Sample("pending", n)
        for i in range(self.samples):
            driver_id = ids.new_id(ids.DRIVER, REGION)
            await self.drivers.register(driver_id, "Freed", f"F{i}", CAR, product)
            lat, lon = _point(self.rng)
            await self.drivers.update_location(driver_id, lat, lon, None, None)
            await self.drivers.go_online(driver_id)
            entry = await self._last_event("driver.online")
            t0 = time.perf_counter()
            await self.dispatcher.handle(entry)
            sample.times_ms.append((time.perf_counter() - t0) * 1000)
            doc = await self.drivers.driver_doc(driver_id)
            offer = (doc or {}).get("offer")
            if offer:
                sample.offers += 1
                await self.drivers.decline(driver_id, offer["trip_id"])
            elif await self._waiting_in_reach(product, lat, lon):
                sample.errors += 1  # a trip waited in reach and was not offered
            else:
                sample.out_of_reach += 1
            await self.drivers.go_offline(driver_id)
        return sample
