"""The matching rules, plain: when dispatch runs, which driver gets a trip,
in which order waiting trips are served, and how far to look. The
dispatcher (dispatcher.py) applies them; the few that must hold atomically
at the offer are in lib/matching.lua (rank order within reach, the waiting
trips near a driver) and the offer script.

Dispatch runs on events, never on a request's path: a trip waits again
(`TRIP_WAITS`: offered to nobody yet, declined, expired offer, cancelled by
its driver) or a driver is free again (`DRIVER_FREED`, which includes
`driver.available`, published by the location fix that makes an online
driver available).

A trip *waits* while requested without an open offer. The nearest available
driver of its product who has not refused it gets it, unless an older trip
waits within DISPATCH_RADIUS_M of that driver: that one is served first
(rank order, oldest first). Searches
start small and widen up to DISPATCH_RADIUS_M, each COUNT-limited, so the
cost of one match stays flat however many drivers are online: a dense city
answers within the first ring. A GEOSEARCH costs what the ring holds, not
what it returns, so where drivers are dense the first ring is smaller still:
sized to hold a few candidates at the region's density of available drivers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

RADIUS_STEPS_M = (500.0, 1000.0, 2000.0, 3500.0)
# Candidates fetched per search, on top of the drivers known to be excluded.
CANDIDATES_PER_SEARCH = 8
# The first ring holds about this many times CANDIDATES_PER_SEARCH drivers
# when they are spread evenly; it is never smaller than MIN_FIRST_RADIUS_M.
FIRST_RING_MARGIN = 4
MIN_FIRST_RADIUS_M = 100.0
# Waiting trips considered around a driver who became available: the oldest
# within reach, found among this many of the oldest in the ranking...
NEAR_TRIPS_WANTED = 32
NEAR_TRIPS_SCANNED = 1024
# ...or, when a long queue's oldest wait elsewhere, the nearest.
NEAR_TRIPS_LIMIT = 500
# Older trips an offer checks for one within reach of the driver (rank order).
OLDER_TRIPS_CHECKED = 32
# Offers tried for one trip in one pass before leaving it to the next event.
MAX_OFFER_ATTEMPTS = 32
# Older trips served first, one inside another, before giving up on order.
MAX_OLDER_DEPTH = 4
# The safety net re-offers this many of the oldest waiting trips per product
# (drivers move into range without any event), among this many of the
# oldest in the ranking (which also holds the trips with an offer out).
REMATCH_BATCH = 50
REMATCH_SCANNED = 1000

# Events after which the trip waits for a driver again.
TRIP_WAITS = frozenset({"trip.requested", "trip.offer_declined", "trip.offer_expired",
                        "trip.driver_cancelled"})
# Events after which their driver is available again (if nothing else took them).
DRIVER_FREED = frozenset({"trip.offer_declined", "trip.offer_expired", "trip.driver_cancelled",
                          "trip.completed", "trip.cancelled", "trip.expired", "driver.online",
                          "driver.available"})


@dataclass(frozen=True, slots=True)
class Candidate:
    driver_id: str
    distance_m: float


def radius_steps(max_radius_m: float, first_m: float | None = None) -> list[float]:
    """The rings searched in turn; `first_m` (see `first_radius`) goes first
    when it is smaller than the usual first ring."""
    start = (first_m,) if first_m is not None and first_m < RADIUS_STEPS_M[0] else ()
    steps = [r for r in (*start, *RADIUS_STEPS_M) if r < max_radius_m]
    return [*steps, float(max_radius_m)]


def first_radius(available: int, area_km2: float) -> float | None:
    """A first ring for `available` drivers spread over `area_km2`, or None
    where they are too sparse for a ring smaller than the usual first one."""
    if available <= 0 or area_km2 <= 0:
        return None
    per_km2 = available / area_km2
    expected = FIRST_RING_MARGIN * CANDIDATES_PER_SEARCH
    radius = 1000 * math.sqrt(expected / (math.pi * per_km2))
    if radius >= RADIUS_STEPS_M[0] / 2:  # not worth a search of its own
        return None
    return max(MIN_FIRST_RADIUS_M, float(round(radius, -1)))


def area_km2(min_lat: float, min_lon: float, max_lat: float, max_lon: float) -> float:
    """Area of a latitude/longitude box (small-area approximation)."""
    mid = math.radians((min_lat + max_lat) / 2)
    return (max_lat - min_lat) * 111.32 * (max_lon - min_lon) * 111.32 * math.cos(mid)


def search_count(excluded: int) -> int:
    return CANDIDATES_PER_SEARCH + excluded


def eligible(candidates: Iterable[Candidate], excluded: set[str]) -> Iterator[Candidate]:
    """Candidates nearest first, without those excluded (refused or tried)."""
    for c in sorted(candidates, key=lambda c: (c.distance_m, c.driver_id)):
        if c.driver_id not in excluded:
            yield c


def rank_order(scores: dict[str, float]) -> list[str]:
    """Waiting trips oldest first (score = request time), ties by id."""
    return [t for t, _ in sorted(scores.items(), key=lambda kv: (kv[1], kv[0]))]


def is_waiting(trip: dict | None) -> bool:
    """Requested without an open offer: a trip dispatch may offer."""
    return trip is not None and trip.get("status") == "requested" and not trip.get("offer")
