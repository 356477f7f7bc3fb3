"""The dispatcher: the `dispatch` consumer group on each region's events.

Each waiting trip (requested, no open offer) goes to the nearest available
driver of its product who has not refused it, through an atomic offer script
that checks both sides, so two dispatchers (replicas) can never offer one
trip twice at once nor one driver two trips. Whenever a driver becomes
available, the waiting trips near them are dispatched again, oldest first.
The rules (when, who, in which order, how far) are in matching.py; this
module applies them. Every pass starts from an event of the stream, never
from a request: the location fix that makes a driver available publishes
`driver.available` with the fix, so serving that driver reads no document.

Handlers are idempotent by construction: every action is "offer this trip if
it is still waiting", so a redelivered event changes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from common import ids
from common.fares import PRODUCTS
from common.settings import Settings
from common.streams import Entry
from common.tracing import new_trace_id, trace_id_var

from . import document
from .matching import (
    DRIVER_FREED,
    MAX_OFFER_ATTEMPTS,
    MAX_OLDER_DEPTH,
    REMATCH_BATCH,
    REMATCH_SCANNED,
    TRIP_WAITS,
    eligible,
    is_waiting,
    radius_steps,
    rank_order,
    search_count,
)
from .store import DriverStore

logger = logging.getLogger(__name__)

NOBODY = "nobody"
# How long this process remembers having offered a driver a trip (for the
# searches begun before: see `_eligible`).
OFFERED_KEPT_S = 30.0


@dataclass(frozen=True, slots=True)
class Around:
    """A driver available at a point: the waiting trips near it are served."""

    driver_id: str
    region: str
    product: str
    lat: float
    lon: float


def ordered_by(entry: Entry) -> tuple[str, ...]:
    """The consumer's order keys for an entry: its trip and its driver.
    Entries of one trip or of one driver are handled in stream order; the
    others of a batch at once (the offer script checks both sides, so two
    offers at once can never book one trip or one driver twice)."""
    fields = entry.fields
    return tuple(k for k in (fields.get("trip_id"), fields.get("driver_id")) if k)


class Dispatcher:
    def __init__(self, store: DriverStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.offers_made = 0
        # Offers in flight in this process, each with a future of whether
        # it was made: the passes of a batch run at once (`ordered_by`), and
        # a pass that comes to a trip or a driver another is offering waits
        # for that offer, then goes on as if it had run after it (the trip or
        # driver taken, or still free). Without this, passes at once all
        # reach for the same nearest driver and oldest trip, and all but one
        # try again. (Across processes the offer script alone decides.)
        self._trips_in_flight: dict[str, asyncio.Future] = {}
        self._drivers_in_flight: dict[str, asyncio.Future] = {}
        # When this process last offered each driver a trip (loop time): a
        # search that began before it answered with the driver still free.
        self._offered_at: dict[str, float] = {}

    # --- the consumer handler --------------------------------------------
    async def handle(self, entry: Entry) -> None:
        type_ = entry.type
        if type_ not in TRIP_WAITS and type_ not in DRIVER_FREED:
            return
        env = entry.envelope
        # Offers caused by this event carry its trace.
        trace_id_var.set(env.get("trace_id") or new_trace_id())
        trip_id = env.get("trip_id") or ""
        driver_id = env.get("driver_id") or ""
        if type_ == "trip.cancelled" and driver_id:
            await self.store.release_after_cancel(trip_id, driver_id)
        trips = [trip_id] if type_ in TRIP_WAITS and trip_id else []
        around = None
        if type_ == "driver.available":
            # The fix that made the driver available, as its script wrote it.
            data = env.get("data") or {}
            loc = data["location"]
            around = Around(driver_id, ids.region_of(driver_id), data["product"],
                            loc["lat"], loc["lon"])
        elif type_ in DRIVER_FREED and driver_id and (
            type_ != "driver.online" or (env.get("data") or {}).get("available")
        ):
            around = await self.available(driver_id)
        known = None
        if type_ == "trip.requested":
            # The event carries what dispatch needs of a new trip: no reads.
            data = env.get("data") or {}
            self.store.remember_trip(trip_id, data["product"], data["rider_id"])
            known = {"id": trip_id, "status": "requested", "product": data["product"],
                     "pickup": data["pickup"], "refused": [], "offer": None}
        await self.dispatch(trips, around, known=known)

    # --- dispatch ----------------------------------------------------------
    async def available(self, driver_id: str) -> Around | None:
        """The driver where they are, if available now (another script freed them)."""
        driver = await self.store.driver_doc(driver_id)
        if driver is None or not document.is_available(driver):
            return None
        loc = driver["location"]
        return Around(driver_id, ids.region_of(driver_id), driver["product"], loc["lat"], loc["lon"])

    async def dispatch(self, trip_ids: Iterable[str], around: Around | None = None,
                       known: dict | None = None) -> int:
        """Offer `trip_ids` and, around an available driver, the waiting
        trips near them, in rank order (oldest first). Returns offers made.
        `known` is a trip as its request event described it (the offer script
        checks it is still waiting; so does it the driver's availability)."""
        explicit = [t for t in trip_ids if t]
        near: list[str] = []
        if around is not None:
            near = await self.store.waiting_near(
                around.region, around.product, around.lat, around.lon,
                self.settings.dispatch_radius_m,
            )
        candidates = list(dict.fromkeys([*explicit, *near]))
        if not candidates:
            return 0
        made = 0
        around_id = around.driver_id if around is not None else None
        around_open = around is not None
        # Read before any offer of this pass: the offer script re-checks.
        docs = {known["id"]: known} if known is not None else {}
        docs.update(await self._docs([t for t in candidates if t not in docs]))
        ordered = (candidates if len(candidates) == 1
                   else rank_order(await self._scores(candidates, docs)))
        for trip_id in ordered:
            only_near = trip_id not in explicit
            if only_near and not around_open:
                continue
            trip = docs.get(trip_id)
            if not is_waiting(trip):
                continue
            if only_near and around_id in trip.get("refused", ()):
                continue
            offered_to, why = await self.offer_trip(trip)
            if offered_to:
                made += 1
            if around_open and (offered_to == around_id or (only_near and why == NOBODY)):
                # The driver took this trip, or was taken meanwhile by another
                # dispatcher (an available driver in range would have got it).
                around_open = False
        return made

    async def _docs(self, trip_ids: list[str]) -> dict[str, dict]:
        by_region: dict[str, list[str]] = {}
        for trip_id in trip_ids:
            by_region.setdefault(ids.region_of(trip_id), []).append(trip_id)
        docs: dict[str, dict] = {}
        for members in by_region.values():
            docs.update(await self.store.trip_docs(members))
        return docs

    async def _scores(self, trip_ids: list[str], docs: dict[str, dict]) -> dict[str, float]:
        """Rank scores of the trips (those gone have none), by their queue,
        which their documents, read already, name."""
        by_queue: dict[tuple[str, str], list[str]] = {}
        for trip_id in trip_ids:
            doc = docs.get(trip_id)
            if doc is not None:
                by_queue.setdefault((ids.region_of(trip_id), doc["product"]), []).append(trip_id)
        scores: dict[str, float] = {}
        for (region, product), members in by_queue.items():
            scores.update(await self.store.ranks(region, product, members))
        return scores

    async def _eligible(self, trip: dict, excluded: set[str]):
        """Eligible drivers for a trip, nearest first, widening the radius;
        `excluded` may grow while iterating (drivers tried and found busy)."""
        region = ids.region_of(trip["id"])
        pickup = trip["pickup"]
        first = await self.store.first_radius(region, trip["product"])
        radii = radius_steps(self.settings.dispatch_radius_m, first)
        clock = asyncio.get_running_loop().time
        offered_at = self._offered_at
        i = 0
        while i < len(radii):
            searched = clock()
            count = search_count(len(excluded))
            before = len(excluded)
            found = await self.store.search_drivers(
                region, trip["product"], pickup["lat"], pickup["lon"], radii[i], count,
            )
            for candidate in eligible(found, excluded):
                driver_id = candidate.driver_id
                if driver_id in excluded:
                    continue
                if offered_at.get(driver_id, -1.0) >= searched:
                    # Offered a trip by another pass since this search.
                    excluded.add(driver_id)
                    continue
                yield candidate
            # The widest ring answered in full and its drivers were taken
            # meanwhile (passes at once): more may wait beyond its COUNT.
            if not (i == len(radii) - 1 and len(found) >= count and len(excluded) > before):
                i += 1

    async def offer_trip(self, trip: dict, depth: int = 0) -> tuple[str | None, str]:
        """Offer one waiting trip to the nearest eligible driver:
        (driver id, "ok"), or (None, why): NOBODY in range could take it, or
        the trip is no longer waiting ("trip_gone", "trip_offered"; also
        when another pass of this process offered it meanwhile).

        The offer script answers `older_waiting` when an older trip waits
        within reach of the chosen driver: that trip is served first (it may
        well take this driver), then this one goes on."""
        trip_id = trip["id"]
        in_flight = self._trips_in_flight
        while (pending := in_flight.get(trip_id)) is not None:
            if await asyncio.shield(pending):
                return None, "trip_offered"
        done = in_flight[trip_id] = asyncio.get_running_loop().create_future()
        offered_to = None
        try:
            offered_to, why = await self._offer_trip(trip, depth)
            return offered_to, why
        finally:
            del in_flight[trip_id]
            done.set_result(offered_to is not None)

    async def _offer_trip(self, trip: dict, depth: int) -> tuple[str | None, str]:
        excluded = set(trip.get("refused") or ())
        pass_over: list[str] = []
        attempts = 0
        in_flight = self._drivers_in_flight
        loop = asyncio.get_running_loop()
        async for candidate in self._eligible(trip, excluded):
            driver_id = candidate.driver_id
            outcome = "driver_busy"
            while attempts < MAX_OFFER_ATTEMPTS:
                pending = in_flight.get(driver_id)
                if pending is not None:
                    if await asyncio.shield(pending):
                        break  # offered another trip meanwhile: driver_busy
                    continue
                attempts += 1
                done = in_flight[driver_id] = loop.create_future()
                outcome = "error"
                try:
                    outcome, detail = await self.store.offer(trip, candidate, pass_over)
                finally:
                    del in_flight[driver_id]
                    done.set_result(outcome == "ok")
                if outcome != "older_waiting":
                    break
                older = await self.store.trip_doc(detail)
                if (depth < MAX_OLDER_DEPTH and is_waiting(older)
                        and driver_id not in older.get("refused", ())):
                    await self.offer_trip(older, depth + 1)
                else:
                    pass_over.append(detail)
            else:
                return None, NOBODY
            if outcome == "ok":
                self.offers_made += 1
                self._note_offered(driver_id)
                return driver_id, outcome
            if outcome in ("trip_gone", "trip_offered"):
                return None, outcome
            # driver_busy (taken meanwhile, maybe by the older trip, or being
            # offered another trip by a pass of this process) or refused:
            # try the next one.
            excluded.add(driver_id)
        return None, NOBODY

    def _note_offered(self, driver_id: str) -> None:
        offered_at = self._offered_at
        now = asyncio.get_running_loop().time()
        offered_at.pop(driver_id, None)
        offered_at[driver_id] = now
        # Oldest first (insertion order): a search lasts well under this.
        while offered_at:
            oldest = next(iter(offered_at))
            if offered_at[oldest] > now - OFFERED_KEPT_S:
                break
            del offered_at[oldest]

    async def rematch(self, region: str) -> int:
        """Safety net, run by the sweeper: drivers move, so a trip nobody was
        in range of may have one now. The oldest waiting trips (without an
        offer out) are tried again."""
        made = 0
        for product in PRODUCTS:
            waiting = await self.store.oldest_waiting(region, product, REMATCH_BATCH,
                                                      REMATCH_SCANNED)
            for trip in waiting:
                if (await self.offer_trip(trip))[0]:
                    made += 1
        return made
