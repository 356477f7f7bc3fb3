"""Driver storage, the writes: each change of a driver or a driver-side
trip transition is one script (scripts.py declares them), called here with
the reads it needs first (reads.py)."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from common import errors, ids, keys
from common.fares import FARE_MODELS
from common.geo import surge_cell
from common.regions import region_errors
from common.script_contracts import ScriptError
from common.settings import Settings
from common.trip.statemachine import ADVANCES, WITH_DRIVER, Status, transition

from . import document
from . import scripts as S
from .matching import OLDER_TRIPS_CHECKED, Candidate
from .reads import CACHE_SIZE, _LRU, DriverReads, TripFacts

# A script that read a document which changed before it ran says `retry`.
MAX_RETRIES = 5
HOLDING = ",".join(sorted({*WITH_DRIVER, Status.COMPLETED}))
WITH_DRIVER_CSV = ",".join(sorted(WITH_DRIVER))


class DriverStore(DriverReads):
    def __init__(self, redis, settings: Settings) -> None:
        super().__init__(redis, settings)
        self._location_keys: _LRU = _LRU(CACHE_SIZE)

    # --- drivers -------------------------------------------------------
    async def register(self, driver_id: str, first_name: str, last_name: str, car: dict,
                       product: str) -> tuple[dict, bool]:
        self.driver_region(driver_id)
        doc = document.new_driver(driver_id, first_name, last_name, car, product)
        reply = await self.scripts.call(
            S.REGISTER_DRIVER, S.RegisterKeys.of(driver_id),
            S.RegisterArgs(doc=orjson.dumps(doc).decode()),
        )
        stored = reply.doc
        if reply.kind == "exists":
            if not document.same_registration(stored, first_name, last_name, car, product):
                raise errors.Conflict("This driver id is registered with other details.")
            return stored, False
        self._products.put(driver_id, product)
        return stored, True

    async def go_online(self, driver_id: str) -> dict:
        self.driver_region(driver_id)
        product = await self.driver_product(driver_id)
        reply = await self.scripts.call(
            S.SET_DRIVER_ONLINE, S.OnlineKeys.of(driver_id, product), S.NoArgs()
        )
        return reply.doc

    async def go_offline(self, driver_id: str) -> dict:
        self.driver_region(driver_id)
        product = await self.driver_product(driver_id)
        for _ in range(MAX_RETRIES):
            current = await self.get(driver_id)
            offer_trip = current["offer"]["trip_id"] if current.get("offer") else ""
            active = current.get("trip_id") or ""
            try:
                reply = await self.scripts.call(
                    S.SET_DRIVER_OFFLINE, S.OfflineKeys.of(driver_id, product, offer_trip, active),
                    S.OfflineArgs(offer_trip_id=offer_trip, active_trip_id=active,
                                  holding=WITH_DRIVER_CSV),
                )
                return reply.doc
            except ScriptError as exc:
                if exc.code != "retry":
                    raise
        raise errors.Conflict("The driver kept changing; try again.")

    async def update_location(self, driver_id: str, lat: float, lon: float,
                              heading: float | None, speed: float | None) -> bool:
        """True when this fix made the driver available (first fix while online):
        the script then published `driver.available` for the dispatcher."""
        region = self.driver_region(driver_id)
        errs = region_errors(region, {"lat": lat, "lon": lon}, "location")
        if errs:
            for e in errs:
                e["field"] = e["field"].removeprefix("location.")
            raise errors.Invalid("The location is outside the driver's region.", errors=errs)
        location_keys = self._location_keys.get(driver_id)
        if location_keys is None:
            # A driver's keys never change: built once per process, not per fix.
            location_keys = S.DriverKeys.of(driver_id, await self.driver_product(driver_id))
            self._location_keys.put(driver_id, location_keys)
        args = S.LocationArgs(lat=repr(lat), lon=repr(lon),
                              heading="" if heading is None else repr(heading),
                              speed_mps="" if speed is None else repr(speed),
                              cell=surge_cell(lat, lon))
        try:
            reply = await self.scripts.call(S.UPDATE_DRIVER_LOCATION, location_keys, args)
        except ScriptError as exc:
            if exc.code != "needs_event_ids":
                raise
            # Rare (the first fix after going online without one): the fix
            # publishes driver.available and needs its event id.
            reply = await self.scripts.call(S.UPDATE_DRIVER_LOCATION, location_keys, args,
                                            n_events=1)
        return reply.available

    # --- offers and driver-side transitions ------------------------------
    async def offer(self, trip: dict, candidate: Candidate,
                    pass_over: Iterable[str] = ()) -> tuple[str, str]:
        """Offer a waiting trip to one driver: ('ok', ''), or why not:
        trip_gone, trip_offered, refused, driver_busy, or ('older_waiting',
        trip_id) when an older waiting trip is within reach of that driver."""
        driver_id = candidate.driver_id
        try:
            await self.scripts.call(
                S.OFFER_TRIP_TO_DRIVER, S.OfferKeys.of(trip["id"], driver_id, trip["product"]),
                S.OfferArgs(
                    driver_id=driver_id,
                    distance_m=round(candidate.distance_m, 1),
                    timeout_ms=int(self.settings.offer_timeout_s * 1000),
                    sources=transition("offer").sources_csv,
                    radius_m=self.settings.dispatch_radius_m,
                    older_checked=OLDER_TRIPS_CHECKED,
                    pass_over=",".join(pass_over),
                ),
            )
        except ScriptError as exc:
            return exc.code, exc.detail
        return "ok", ""

    async def accept(self, driver_id: str, trip_id: str) -> dict:
        facts = await self.trip_facts(trip_id)
        product = await self.driver_product(driver_id)
        self._same_region(driver_id, facts)
        t = transition("accept")
        reply = await self.scripts.call(
            S.ACCEPT_OFFER, S.AcceptKeys.of(trip_id, driver_id, product, facts.product),
            S.AcceptArgs(driver_id=driver_id, sources=t.sources_csv, target=t.target,
                         holding=HOLDING),
        )
        return reply.doc

    async def decline(self, driver_id: str, trip_id: str) -> None:
        facts = await self.trip_facts(trip_id)
        product = await self.driver_product(driver_id)
        self._same_region(driver_id, facts)
        await self.scripts.call(
            S.DECLINE_OFFER, S.DeclineKeys.of(trip_id, driver_id, product, facts.product),
            S.DriverTripArgs(driver_id=driver_id, sources=transition("decline").sources_csv),
        )

    def _same_region(self, driver_id: str, facts: TripFacts) -> None:
        if ids.region_of(driver_id) != facts.region:
            raise errors.NotFound("No such trip.")

    async def advance(self, driver_id: str, trip_id: str, action: str) -> dict:
        """A step of statemachine.ADVANCES (arrive, start)."""
        facts = await self.trip_facts(trip_id)
        await self.driver_product(driver_id)
        self._same_region(driver_id, facts)
        t = ADVANCES[action]
        reply = await self.scripts.call(
            S.ADVANCE_TRIP, S.AdvanceKeys.of(trip_id),
            S.AdvanceArgs(driver_id=driver_id, sources=t.sources_csv, target=t.target,
                          stamp=t.stamp, event=t.event),
        )
        return reply.doc

    async def complete(self, driver_id: str, trip_id: str) -> dict:
        facts = await self.trip_facts(trip_id)
        product = await self.driver_product(driver_id)
        self._same_region(driver_id, facts)
        trip = await self.trip_doc(trip_id)
        now = await self.server_ms()
        started = trip.get("started_ms") or now
        fare = FARE_MODELS[facts.product].money(
            trip["distance_m"], max(now - started, 0) / 1000, trip.get("surge", 1)
        )
        t = transition("complete")
        reply = await self.scripts.call(
            S.COMPLETE_TRIP, S.CompleteKeys.of(trip_id, driver_id, product, facts.rider_id),
            S.CompleteArgs(driver_id=driver_id, sources=t.sources_csv, target=t.target,
                           fare=orjson.dumps(fare).decode()),
        )
        return reply.doc

    async def cancel(self, driver_id: str, trip_id: str, reason: str | None) -> dict:
        facts = await self.trip_facts(trip_id)
        product = await self.driver_product(driver_id)
        self._same_region(driver_id, facts)
        t = transition("driver_cancel")
        reply = await self.scripts.call(
            S.CANCEL_TRIP_BY_DRIVER,
            S.DriverCancelKeys.of(trip_id, driver_id, product, facts.product),
            S.DriverCancelArgs(driver_id=driver_id, sources=t.sources_csv, target=t.target,
                               reason=reason or "",
                               expiry_ms=int(self.settings.trip_expiry_s * 1000)),
        )
        return reply.doc

    async def release_after_cancel(self, trip_id: str, driver_id: str) -> bool:
        """Free the driver of a trip the rider cancelled. True if freed now."""
        product = await self.driver_product(driver_id)
        reply = await self.scripts.call(
            S.RELEASE_DRIVER_AFTER_CANCEL, S.ReleaseKeys.of(driver_id, product, trip_id),
            S.ReleaseArgs(trip_id=trip_id, holding=WITH_DRIVER_CSV),
        )
        return reply.available

    # --- deadlines ------------------------------------------------------
    async def due(self, key: str, now_ms: int, limit: int) -> list[str]:
        return await self.redis.zrangebyscore(key, "-inf", now_ms, start=0, num=limit)

    async def expire_offer(self, trip_id: str) -> str:
        region = ids.region_of(trip_id)
        for _ in range(MAX_RETRIES):
            trip = await self.trip_doc(trip_id)
            holder = (trip or {}).get("offer") or {}
            driver_id = holder.get("driver_id", "")
            if trip is None:
                await self.redis.zrem(keys.offer_deadlines(region), trip_id)
                return "stale"
            try:
                reply = await self.scripts.call(
                    S.EXPIRE_OFFER, S.ExpireOfferKeys.of(trip_id, trip["product"], driver_id),
                    S.ExpireOfferArgs(trip_id=trip_id, holder=driver_id,
                                      sources=transition("expire_offer").sources_csv),
                )
                return "expired" if reply.events else "stale"
            except ScriptError as exc:
                if exc.code != "retry":
                    return exc.code
        return "retry"

    async def expire_trip(self, trip_id: str) -> str:
        region = ids.region_of(trip_id)
        for _ in range(MAX_RETRIES):
            trip = await self.trip_doc(trip_id)
            if trip is None:
                await self.redis.zrem(keys.expiry_deadlines(region), trip_id)
                return "stale"
            holder = (trip.get("offer") or {}).get("driver_id", "")
            t = transition("expire")
            try:
                reply = await self.scripts.call(
                    S.EXPIRE_TRIP,
                    S.ExpireTripKeys.of(trip_id, trip["product"], trip["rider_id"], holder),
                    S.ExpireTripArgs(trip_id=trip_id, holder=holder, sources=t.sources_csv,
                                     target=t.target),
                )
                return "expired" if reply.events else "stale"
            except ScriptError as exc:
                if exc.code != "retry":
                    return exc.code
        return "retry"

    # --- ratings ---------------------------------------------------------
    async def apply_rating(self, event_id: str, driver_id: str, stars: int, group: str) -> None:
        await self.scripts.call(
            S.APPLY_TRIP_RATING, S.RatingKeys.of(driver_id, group, event_id),
            S.RatingArgs(stars=stars),
        )
