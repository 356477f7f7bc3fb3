"""trip_service's scripts, declared once: the keys of each (built from ids
by its `Keys.of`), its arguments and its reply. The Lua of each (lua/) reads
them as `K.<key>` and `A.<arg>` (common/script_contracts.py)."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from common import ids, keys
from common.script_contracts import Change, Script, change
from common.scripts import TRIP_LIBRARY, lua_library

LUA_DIR = Path(__file__).parent / "lua"


def _queue(region: str, product: str) -> dict[str, str]:
    return {
        "pending": keys.pending(region, product),
        "pickups": keys.pickups(region, product),
        "demand": keys.demand(region, product),
        "expiry": keys.expiry_deadlines(region),
    }


class RequestKeys(NamedTuple):
    trip: str
    trip_events: str
    rider_active: str
    rider_trips: str
    pending: str
    pickups: str
    demand: str
    expiry: str
    counts: str
    events: str
    active: str

    @classmethod
    def of(cls, trip_id: str, rider_id: str, product: str) -> RequestKeys:
        r = ids.region_of(trip_id)
        return cls(keys.trip(trip_id), keys.trip_events(trip_id), keys.rider_active(rider_id),
                   keys.rider_trips(rider_id), **_queue(r, product),
                   counts=keys.trip_status_counts(r), events=keys.events(r),
                   active=keys.active_trips(r))


class RequestArgs(NamedTuple):
    doc: str  # the new document, JSON, without server times
    expiry_ms: int  # TRIP_EXPIRY_S


REQUEST_TRIP = Script("request_trip", RequestKeys, RequestArgs, change, n_events=1)


class RiderCancelKeys(NamedTuple):
    trip: str
    trip_events: str
    rider_active: str
    pending: str
    pickups: str
    demand: str
    expiry: str
    counts: str
    events: str
    active: str

    @classmethod
    def of(cls, trip_id: str, rider_id: str, product: str) -> RiderCancelKeys:
        r = ids.region_of(trip_id)
        return cls(keys.trip(trip_id), keys.trip_events(trip_id), keys.rider_active(rider_id),
                   **_queue(r, product), counts=keys.trip_status_counts(r),
                   events=keys.events(r), active=keys.active_trips(r))


class RiderCancelArgs(NamedTuple):
    rider_id: str
    sources: str
    target: str
    reason: str  # '' for none


CANCEL_TRIP_BY_RIDER = Script("cancel_trip_by_rider", RiderCancelKeys, RiderCancelArgs, change,
                              n_events=1)


class RateKeys(NamedTuple):
    trip: str
    trip_events: str
    events: str

    @classmethod
    def of(cls, trip_id: str) -> RateKeys:
        return cls(keys.trip(trip_id), keys.trip_events(trip_id),
                   keys.events(ids.region_of(trip_id)))


class RateArgs(NamedTuple):
    rider_id: str
    sources: str
    stars: int
    comment: str  # '' for none


RATE_TRIP = Script("rate_trip", RateKeys, RateArgs, change, n_events=1)


# --- the archiver ------------------------------------------------------------
class ClaimKeys(NamedTuple):
    archive_due: str

    @classmethod
    def of(cls, region: str) -> ClaimKeys:
        return cls(keys.archive_due(region))


class ClaimArgs(NamedTuple):
    batch: int
    lease_ms: int


def claimed(reply) -> list[str]:
    return list(reply)


CLAIM_ARCHIVE_BATCH = Script("claim_archive_batch", ClaimKeys, ClaimArgs, claimed, waits=False)


class DropKeys(NamedTuple):
    trip: str
    trip_events: str
    archive_due: str
    rider_trips: str
    driver_trips: str
    more: tuple[str, ...]  # the delivery records and idempotency marks of its events

    @classmethod
    def of(cls, trip_id: str, rider_id: str | None, driver_id: str | None,
           event_items: list[dict]) -> DropKeys:
        """`event_items`: the trip's `{stream_id, event}` as stored. An index
        the trip is not in (no rider read, no driver or one of another
        region) is a key of the trip's slot that does not hold it."""
        region = ids.region_of(trip_id)
        due = keys.archive_due(region)
        rider_trips = keys.rider_trips(rider_id) if rider_id else None
        driver_trips = (
            keys.driver_trips(driver_id)
            if driver_id and ids.region_of(driver_id) == region else None
        )
        more: list[str] = []
        for item in event_items:
            more.append(keys.deliveries(region, item["stream_id"]))
            event_id = item["event"]["id"]
            more += [keys.seen(region, group, event_id) for group in keys.CONSUMER_GROUPS]
        return cls(keys.trip(trip_id), keys.trip_events(trip_id), due, rider_trips or due,
                   driver_trips or rider_trips or due, tuple(more))


class DropArgs(NamedTuple):
    trip_id: str
    sha1: str  # of the copied document ('' none)
    events: int  # how many events were copied


class Dropped(NamedTuple):
    result: str  # dropped | changed (copied again next pass) | gone


def dropped(reply) -> Dropped:
    return Dropped(reply[0])


DROP_ARCHIVED_TRIP = Script("drop_archived_trip", DropKeys, DropArgs, dropped, waits=False)


SCRIPTS: tuple[Script, ...] = (
    REQUEST_TRIP, CANCEL_TRIP_BY_RIDER, RATE_TRIP, CLAIM_ARCHIVE_BATCH, DROP_ARCHIVED_TRIP,
)

LIBRARY = lua_library("ridehail_trip_service", "trip", LUA_DIR, SCRIPTS, (TRIP_LIBRARY,))

__all__ = ["LIBRARY", "SCRIPTS", "Change", "Dropped"]
