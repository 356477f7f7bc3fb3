"""What driver_service reads: ids and the facts cached from them, the
documents, the searches of dispatch, and the reads behind the internal API
(the offer, the active trip, the assigned driver, nearby drivers, ETAs).
The writes, each one script, are `store.DriverStore`'s, on top of these."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

import orjson

from common import errors, ids, keys
from common.fares import PRODUCTS, eta_s
from common.geo import haversine_m
from common.pagination import page_desc
from common.regions import Region, region_errors
from common.scripts import Scripts
from common.settings import Settings
from common.trip import document as trip_document
from common.trip.statemachine import Status

from . import document
from . import scripts as S
from .matching import (
    NEAR_TRIPS_LIMIT,
    NEAR_TRIPS_SCANNED,
    NEAR_TRIPS_WANTED,
    Candidate,
    area_km2,
    first_radius,
    is_waiting,
    radius_steps,
)

PRODUCER = "driver_service"
CACHE_SIZE = 100_000
AVAILABLE_COUNT_TTL_S = 1.0


class _LRU(OrderedDict):
    """Facts that never change once written (a driver's product, a trip's
    product and rider): cached per process, never state another replica needs."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.size:
            self.popitem(last=False)


@dataclass(frozen=True, slots=True)
class TripFacts:
    region: str
    product: str
    rider_id: str


class DriverReads:
    def __init__(self, redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        # Every function of the library, the read-only ones (searches) too.
        self.scripts = Scripts(redis, S.LIBRARY, PRODUCER, settings.wait_replicas)
        self._products: _LRU = _LRU(CACHE_SIZE)
        self._trips: _LRU = _LRU(CACHE_SIZE)
        # The driver last seen assigned to a trip: a hint, checked on every use.
        self._trip_drivers: _LRU = _LRU(CACHE_SIZE)
        # (region, product) -> (when read, available drivers): sizes the first ring.
        self._available: dict[tuple[str, str], tuple[float, int]] = {}

    # --- ids, facts, keys ----------------------------------------------
    def _region(self, object_id: str, kind: str, what: str) -> str:
        parsed = ids.parse_id(object_id)
        if parsed is None or parsed[0] != kind or self.settings.region(parsed[1]) is None:
            raise errors.NotFound(f"No such {what}.")
        return parsed[1]

    def driver_region(self, driver_id: str) -> Region:
        return self.settings.region(self._region(driver_id, ids.DRIVER, "driver"))

    async def driver_product(self, driver_id: str) -> str:
        self._region(driver_id, ids.DRIVER, "driver")
        product = self._products.get(driver_id)
        if product is None:
            raw = await self.redis.execute_command("JSON.GET", keys.driver(driver_id), "$.product")
            values = orjson.loads(raw) if raw else []
            if not values:
                raise errors.NotFound("No such driver.")
            product = values[0]
            self._products.put(driver_id, product)
        return product

    async def trip_facts(self, trip_id: str) -> TripFacts:
        region = self._region(trip_id, ids.TRIP, "trip")
        facts = self._trips.get(trip_id)
        if facts is None:
            raw = await self.redis.execute_command(
                "JSON.GET", keys.trip(trip_id), "$.product", "$.rider_id"
            )
            values = orjson.loads(raw) if raw else {}
            if not values.get("$.product"):
                raise errors.NotFound("No such trip.")
            facts = TripFacts(region, values["$.product"][0], values["$.rider_id"][0])
            self._trips.put(trip_id, facts)
        return facts

    def remember_trip(self, trip_id: str, product: str, rider_id: str) -> None:
        self._trips.put(trip_id, TripFacts(ids.region_of(trip_id), product, rider_id))

    async def server_ms(self) -> int:
        seconds, micros = await self.redis.time()
        return seconds * 1000 + micros // 1000

    # --- documents -----------------------------------------------------
    async def driver_doc(self, driver_id: str) -> dict | None:
        raw = await self.redis.execute_command("JSON.GET", keys.driver(driver_id))
        return orjson.loads(raw) if raw else None

    async def trip_doc(self, trip_id: str) -> dict | None:
        raw = await self.redis.execute_command("JSON.GET", keys.trip(trip_id))
        return trip_document.expand(orjson.loads(raw)) if raw else None

    async def trip_docs(self, trip_ids: list[str]) -> dict[str, dict]:
        """Documents of trips of one region, in one round trip."""
        if not trip_ids:
            return {}
        raws = await self.redis.execute_command(
            "JSON.MGET", *[keys.trip(t) for t in trip_ids], "$"
        )
        return {t: trip_document.expand(orjson.loads(raw)[0])
                for t, raw in zip(trip_ids, raws) if raw}

    async def get(self, driver_id: str) -> dict:
        self._region(driver_id, ids.DRIVER, "driver")
        doc = await self.driver_doc(driver_id)
        if doc is None:
            raise errors.NotFound("No such driver.")
        return doc

    # --- searches ------------------------------------------------------
    async def search_drivers(self, region: str, product: str, lat: float, lon: float,
                             radius_m: float, count: int) -> list[Candidate]:
        rows = await self.redis.geosearch(
            keys.geo(region, product), longitude=lon, latitude=lat, radius=radius_m,
            unit="m", sort="ASC", count=count, withdist=True,
        )
        return [Candidate(member, float(dist)) for member, dist in rows]

    async def first_radius(self, region: str, product: str) -> float | None:
        """The first search ring for the region's density of available drivers
        of a product (their count read at most once a second per process)."""
        now = time.monotonic()
        cached = self._available.get((region, product))
        if cached is None or now - cached[0] > AVAILABLE_COUNT_TTL_S:
            cached = (now, await self.redis.zcard(keys.geo(region, product)))
            self._available[(region, product)] = cached
        r = self.settings.region(region)
        if r is None:
            return None
        return first_radius(cached[1], area_km2(r.min_lat, r.min_lon, r.max_lat, r.max_lon))

    async def waiting_near(self, region: str, product: str, lat: float, lon: float,
                           radius_m: float) -> list[str]:
        """Waiting trips within `radius_m` of a point: the oldest first, read
        from the ranking so the cost stays flat however long the queue; when
        the oldest trips of a long queue wait elsewhere, the nearest too."""
        near_keys = S.NearKeys.of(region, product)
        found = await self.scripts.call(
            S.OLDEST_WAITING_NEAR, near_keys,
            S.NearArgs(lat=repr(lat), lon=repr(lon), radius_m=radius_m,
                       wanted=NEAR_TRIPS_WANTED, scanned=NEAR_TRIPS_SCANNED),
        )
        if len(found.trip_ids) >= NEAR_TRIPS_WANTED or found.complete:
            return found.trip_ids
        nearest = await self.redis.geosearch(
            near_keys.pickups, longitude=lon, latitude=lat, radius=radius_m,
            unit="m", sort="ASC", count=NEAR_TRIPS_LIMIT,
        )
        return list(dict.fromkeys([*found.trip_ids, *nearest]))

    async def ranks(self, region: str, product: str, trip_ids: list[str]) -> dict[str, float]:
        if not trip_ids:
            return {}
        scores = await self.redis.zmscore(keys.pending(region, product), trip_ids)
        return {t: s for t, s in zip(trip_ids, scores) if s is not None}

    async def oldest_waiting(self, region: str, product: str, limit: int,
                             scanned: int) -> list[dict]:
        """The documents of up to `limit` of the oldest trips that wait (no
        open offer), looking at `scanned` of the ranking at most: the head
        of a long queue holds trips with offers out, which hide nothing."""
        found: list[dict] = []
        start = 0
        while len(found) < limit and start < scanned:
            page = await self.redis.zrange(keys.pending(region, product), start,
                                           min(start + limit, scanned) - 1)
            if not page:
                break
            docs = await self.trip_docs(page)
            found += [d for t in page if is_waiting(d := docs.get(t))]
            start += len(page)
        return found[:limit]

    # --- reads for the API -------------------------------------------------
    async def render_trip(self, doc: dict) -> dict:
        """The trip object, with its queue position while requested."""
        position = None
        if doc.get("status") == Status.REQUESTED:
            rank = await self.redis.zrank(
                keys.pending(ids.region_of(doc["id"]), doc["product"]), doc["id"]
            )
            position = rank + 1 if rank is not None else None
        return trip_document.render(doc, position)

    async def open_offer(self, driver_id: str) -> dict | None:
        """The driver's open offer, if it is still open on the trip too."""
        # Two paths: `$.id` tells a missing driver from one without an offer
        # (a document stores no null `offer`).
        raw = await self.redis.execute_command(
            "JSON.GET", keys.driver(driver_id), "$.id", "$.offer"
        )
        values = orjson.loads(raw) if raw else {}
        if not values.get("$.id"):
            raise errors.NotFound("No such driver.")
        offer = (values.get("$.offer") or [None])[0]
        if not offer or offer["expires_ms"] <= time.time() * 1000:
            return None
        raw = await self.redis.execute_command(
            "JSON.GET", keys.trip(offer["trip_id"]), "$.status", "$.offer"
        )
        trip = orjson.loads(raw) if raw else {}
        status = (trip.get("$.status") or [None])[0]
        trip_offer = (trip.get("$.offer") or [None])[0]
        if status != "requested" or not trip_offer or trip_offer.get("driver_id") != driver_id:
            return None
        return document.render_offer(offer)

    async def active_trip(self, driver_id: str) -> dict | None:
        doc = await self.get(driver_id)
        if not doc.get("trip_id"):
            return None
        trip = await self.trip_doc(doc["trip_id"])
        if trip is None or not document.holds_trip(trip, driver_id):
            return None
        return trip

    async def driver_trips(self, driver_id: str, limit: int, cursor: str | None) -> dict:
        await self.get(driver_id)
        trip_ids, next_cursor = await page_desc(
            self.redis, keys.driver_trips(driver_id), limit, cursor
        )
        docs = []
        if trip_ids:
            raws = await self.redis.execute_command(
                "JSON.MGET", *[keys.trip(t) for t in trip_ids], "$"
            )
            docs = [orjson.loads(raw)[0] for raw in raws if raw]
        return {"items": [trip_document.render(d) for d in docs], "next_cursor": next_cursor}

    async def assigned_driver(self, trip_id: str) -> dict:
        self._region(trip_id, ids.TRIP, "trip")
        trip = driver = None
        known = self._trip_drivers.get(trip_id)
        if known is not None:
            # A rider watching their trip asks again and again: both documents
            # in one round trip; the trip read with them says whether this
            # is still its driver (else the driver is read below).
            raws = await self.redis.execute_command(
                "JSON.MGET", keys.trip(trip_id), keys.driver(known), "$"
            )
            trip = trip_document.expand(orjson.loads(raws[0])[0]) if raws[0] else None
            if trip is not None and trip.get("driver_id") == known and raws[1]:
                driver = orjson.loads(raws[1])[0]
        else:
            trip = await self.trip_doc(trip_id)
        if not trip or not trip.get("driver_id"):
            raise errors.NotFound("No driver is assigned to this trip.")
        if driver is None:
            driver = await self.driver_doc(trip["driver_id"])
            if driver is None:
                raise errors.NotFound("No driver is assigned to this trip.")
            self._trip_drivers.put(trip_id, trip["driver_id"])
        driver = document.expand(driver)
        location = driver.get("location")
        eta = None
        if trip["status"] == Status.ASSIGNED and location:
            p = trip["pickup"]
            eta = eta_s(haversine_m(location["lat"], location["lon"], p["lat"], p["lon"]))
        elif trip["status"] == Status.ARRIVED:
            eta = 0
        return {
            "id": driver["id"],
            "first_name": driver["first_name"],
            "rating": driver.get("rating"),
            "car": driver["car"],
            "location": location,
            "pickup_eta_s": eta,
        }

    def region_for_point(self, region_name: str, lat: float, lon: float, field: str) -> Region:
        region = self.settings.region(region_name)
        if region is None:
            raise errors.Invalid(errors=[{"field": "region", "message": "is not a configured region"}])
        errs = region_errors(region, {"lat": lat, "lon": lon}, field)
        if errs:
            for e in errs:
                e["field"] = e["field"].removeprefix(".")
            raise errors.Invalid("The point is outside the region.", errors=errs)
        return region

    async def nearby(self, region_name: str, lat: float, lon: float, radius_m: float,
                     product: str | None, limit: int = 50) -> dict:
        region = self.region_for_point(region_name, lat, lon, "")
        products = [product] if product else list(PRODUCTS)
        async with self.redis.pipeline(transaction=False) as pipe:
            for p in products:
                pipe.geosearch(
                    keys.geo(region.name, p), longitude=lon, latitude=lat, radius=radius_m,
                    unit="m", sort="ASC", count=limit, withdist=True, withcoord=True,
                )
            replies = await pipe.execute()
        drivers = []
        for p, rows in zip(products, replies):
            for _member, dist, (dlon, dlat) in rows:
                drivers.append({
                    "distance_m": round(float(dist), 1),
                    "location": {"lat": round(dlat, 6), "lon": round(dlon, 6)},
                    "product": p,
                    "pickup_eta_s": eta_s(float(dist)),
                })
        drivers.sort(key=lambda d: d["distance_m"])
        drivers = drivers[:limit]
        return {"count": len(drivers), "drivers": drivers}

    async def etas(self, region_name: str, lat: float, lon: float) -> dict:
        """Per product, the ETA of the nearest available driver within
        DISPATCH_RADIUS_M, or null (widening like dispatch: flat cost)."""
        region = self.region_for_point(region_name, lat, lon, "pickup")
        out: dict[str, int | None] = {product: None for product in PRODUCTS}
        steps = {
            product: radius_steps(self.settings.dispatch_radius_m,
                                  await self.first_radius(region.name, product))
            for product in PRODUCTS
        }
        # Ring by ring, every product still without a driver in one round trip.
        open_ = list(PRODUCTS)
        ring = 0
        while open_:
            asked = [p for p in open_ if ring < len(steps[p])]
            if not asked:
                break
            async with self.redis.pipeline(transaction=False) as pipe:
                for product in asked:
                    pipe.geosearch(
                        keys.geo(region.name, product), longitude=lon, latitude=lat,
                        radius=steps[product][ring], unit="m", sort="ASC", count=1,
                        withdist=True,
                    )
                replies = await pipe.execute()
            for product, rows in zip(asked, replies):
                if rows:
                    out[product] = eta_s(float(rows[0][1]))
            open_ = [p for p in asked if out[p] is None]
            ring += 1
        return {"etas": out}
