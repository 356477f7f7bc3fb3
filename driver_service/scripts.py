"""driver_service's scripts, declared once: the keys of each (built from
ids by its `Keys.of`), its arguments and its reply. The Lua of each (lua/)
reads them as `K.<key>` and `A.<arg>` (common/script_contracts.py).

A driver's four keys go together wherever the availability of the driver
may change (`lib/driver.lua`, `sync_supply`): the document, the GEO index
and supply counts of its product, its offer queue.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from common import ids, keys
from common.script_contracts import Change, NoArgs, Script, change
from common.scripts import TRIP_LIBRARY, lua_library

LUA_DIR = Path(__file__).parent / "lua"
DRIVER_LIBRARY = LUA_DIR / "lib" / "driver.lua"
MATCHING_LIBRARY = LUA_DIR / "lib" / "matching.lua"


def _driver(driver_id: str, product: str) -> dict[str, str]:
    region = ids.region_of(driver_id)
    return {
        "driver": keys.driver(driver_id),
        "geo": keys.geo(region, product),
        "supply": keys.supply(region, product),
        "offers": keys.offers(driver_id),
    }


_NO_DRIVER = dict.fromkeys(("driver", "geo", "supply", "offers"))


def _queue(region: str, product: str) -> dict[str, str]:
    return {
        "pending": keys.pending(region, product),
        "pickups": keys.pickups(region, product),
        "demand": keys.demand(region, product),
        "expiry": keys.expiry_deadlines(region),
    }


def _trip(trip_id: str) -> dict[str, str]:
    return {"trip": keys.trip(trip_id), "trip_events": keys.trip_events(trip_id)}


# --- replies -------------------------------------------------------------------
class Became(NamedTuple):
    """Whether the driver is available now and was not before the script."""

    available: bool


def became(reply) -> Became:
    if reply[0] != "ok" or reply[2]:  # a refusal, or events to count
        change(reply)
    return Became(reply[3] == "1")


class Waiting(NamedTuple):
    """Waiting trips near a point, oldest first; `complete`: the whole
    ranking was read (no younger trip left unread)."""

    trip_ids: list[str]
    complete: bool


def waiting(reply) -> Waiting:
    found, complete = reply
    return Waiting(list(found), bool(int(complete)))


# --- drivers -------------------------------------------------------------------
class RegisterKeys(NamedTuple):
    driver: str
    events: str

    @classmethod
    def of(cls, driver_id: str) -> RegisterKeys:
        return cls(keys.driver(driver_id), keys.events(ids.region_of(driver_id)))


class RegisterArgs(NamedTuple):
    doc: str  # the new document, JSON, without server times


REGISTER_DRIVER = Script("register_driver", RegisterKeys, RegisterArgs, change, n_events=1)


class OnlineKeys(NamedTuple):
    driver: str
    geo: str
    supply: str
    offers: str
    online_counts: str
    online_drivers: str
    events: str

    @classmethod
    def of(cls, driver_id: str, product: str) -> OnlineKeys:
        r = ids.region_of(driver_id)
        return cls(**_driver(driver_id, product), online_counts=keys.online_driver_counts(r),
                   online_drivers=keys.online_driver_ids(r), events=keys.events(r))


SET_DRIVER_ONLINE = Script("set_driver_online", OnlineKeys, NoArgs, change, n_events=1)


class OfflineKeys(NamedTuple):
    driver: str
    geo: str
    supply: str
    offers: str
    online_counts: str
    online_drivers: str
    events: str
    offer_deadlines: str
    pickups: str
    offer_trip: str | None
    offer_trip_events: str | None
    active_trip: str | None

    @classmethod
    def of(cls, driver_id: str, product: str, offer_trip: str, active: str) -> OfflineKeys:
        r = ids.region_of(driver_id)
        return cls(
            **_driver(driver_id, product), online_counts=keys.online_driver_counts(r),
            online_drivers=keys.online_driver_ids(r), events=keys.events(r),
            offer_deadlines=keys.offer_deadlines(r), pickups=keys.pickups(r, product),
            offer_trip=keys.trip(offer_trip) if offer_trip else None,
            offer_trip_events=keys.trip_events(offer_trip) if offer_trip else None,
            active_trip=keys.trip(active) if active else None,
        )


class OfflineArgs(NamedTuple):
    offer_trip_id: str  # as read ('' none): the script answers `retry` if it changed
    active_trip_id: str  # as read ('' none)
    holding: str  # statuses in which a driver holds a trip (csv)


SET_DRIVER_OFFLINE = Script("set_driver_offline", OfflineKeys, OfflineArgs, change, n_events=3)


class DriverKeys(NamedTuple):
    driver: str
    geo: str
    supply: str
    offers: str
    events: str

    @classmethod
    def of(cls, driver_id: str, product: str) -> DriverKeys:
        # Positional: on every location fix.
        region = ids.region_of(driver_id)
        return cls(keys.driver(driver_id), keys.geo(region, product),
                   keys.supply(region, product), keys.offers(driver_id), keys.events(region))


class LocationArgs(NamedTuple):
    lat: str
    lon: str
    heading: str  # '' when unknown
    speed_mps: str  # '' when unknown
    cell: str  # the surge cell of the fix


# A fix is no event (too frequent for the durable stream), except the one
# that makes the driver available: `driver.available`, for the dispatcher.
# Called without an event id; that fix answers `needs_event_ids` before it
# writes, and is sent again with one.
UPDATE_DRIVER_LOCATION = Script("update_driver_location", DriverKeys, LocationArgs, became,
                                waits=False)


class RatingKeys(NamedTuple):
    seen: str
    driver: str

    @classmethod
    def of(cls, driver_id: str, group: str, event_id: str) -> RatingKeys:
        return cls(keys.seen(ids.region_of(driver_id), group, event_id), keys.driver(driver_id))


class RatingArgs(NamedTuple):
    stars: int


APPLY_TRIP_RATING = Script("apply_trip_rating", RatingKeys, RatingArgs, change, waits=False)


# --- offers ----------------------------------------------------------------------
class OfferKeys(NamedTuple):
    trip: str
    trip_events: str
    driver: str
    geo: str
    supply: str
    offers: str
    offer_deadlines: str
    events: str
    pending: str
    pickups: str

    @classmethod
    def of(cls, trip_id: str, driver_id: str, product: str) -> OfferKeys:
        r = ids.region_of(trip_id)
        return cls(**_trip(trip_id), **_driver(driver_id, product),
                   offer_deadlines=keys.offer_deadlines(r), events=keys.events(r),
                   pending=keys.pending(r, product), pickups=keys.pickups(r, product))


class OfferArgs(NamedTuple):
    driver_id: str
    distance_m: float  # to the pickup
    timeout_ms: int  # OFFER_TIMEOUT_S
    sources: str
    radius_m: float  # DISPATCH_RADIUS_M: an older trip within it is served first
    older_checked: int  # how many older trips to look at
    pass_over: str  # older trips not to serve first (csv)


OFFER_TRIP_TO_DRIVER = Script("offer_trip_to_driver", OfferKeys, OfferArgs, change, n_events=1)


class AcceptKeys(NamedTuple):
    trip: str
    trip_events: str
    driver: str
    geo: str
    supply: str
    offers: str
    offer_deadlines: str
    driver_trips: str
    pending: str
    pickups: str
    demand: str
    expiry: str
    counts: str
    events: str

    @classmethod
    def of(cls, trip_id: str, driver_id: str, driver_product: str,
           trip_product: str) -> AcceptKeys:
        r = ids.region_of(trip_id)
        return cls(**_trip(trip_id), **_driver(driver_id, driver_product),
                   offer_deadlines=keys.offer_deadlines(r),
                   driver_trips=keys.driver_trips(driver_id), **_queue(r, trip_product),
                   counts=keys.trip_status_counts(r), events=keys.events(r))


class AcceptArgs(NamedTuple):
    driver_id: str
    sources: str
    target: str
    holding: str  # statuses in which a repeated accept by the winner answers 200


ACCEPT_OFFER = Script("accept_offer", AcceptKeys, AcceptArgs, change, n_events=1)


class DeclineKeys(NamedTuple):
    trip: str
    trip_events: str
    driver: str
    geo: str
    supply: str
    offers: str
    offer_deadlines: str
    events: str
    pickups: str

    @classmethod
    def of(cls, trip_id: str, driver_id: str, driver_product: str,
           trip_product: str) -> DeclineKeys:
        r = ids.region_of(trip_id)
        return cls(**_trip(trip_id), **_driver(driver_id, driver_product),
                   offer_deadlines=keys.offer_deadlines(r), events=keys.events(r),
                   pickups=keys.pickups(r, trip_product))


class DriverTripArgs(NamedTuple):
    driver_id: str
    sources: str


DECLINE_OFFER = Script("decline_offer", DeclineKeys, DriverTripArgs, change, n_events=1)


class ExpireOfferKeys(NamedTuple):
    trip: str
    trip_events: str
    offer_deadlines: str
    events: str
    pickups: str
    driver: str | None
    geo: str | None
    supply: str | None
    offers: str | None

    @classmethod
    def of(cls, trip_id: str, product: str, holder: str) -> ExpireOfferKeys:
        r = ids.region_of(trip_id)
        return cls(**_trip(trip_id), offer_deadlines=keys.offer_deadlines(r),
                   events=keys.events(r), pickups=keys.pickups(r, product),
                   **(_driver(holder, product) if holder else _NO_DRIVER))


class ExpireOfferArgs(NamedTuple):
    trip_id: str
    holder: str  # the offer's driver as read ('' none)
    sources: str


EXPIRE_OFFER = Script("expire_offer", ExpireOfferKeys, ExpireOfferArgs, change, n_events=1)


class ExpireTripKeys(NamedTuple):
    trip: str
    trip_events: str
    pending: str
    pickups: str
    demand: str
    expiry: str
    counts: str
    rider_active: str
    offer_deadlines: str
    events: str
    active: str
    driver: str | None
    geo: str | None
    supply: str | None
    offers: str | None

    @classmethod
    def of(cls, trip_id: str, product: str, rider_id: str, holder: str) -> ExpireTripKeys:
        r = ids.region_of(trip_id)
        return cls(**_trip(trip_id), **_queue(r, product), counts=keys.trip_status_counts(r),
                   rider_active=keys.rider_active(rider_id),
                   offer_deadlines=keys.offer_deadlines(r), events=keys.events(r),
                   active=keys.active_trips(r),
                   **(_driver(holder, product) if holder else _NO_DRIVER))


class ExpireTripArgs(NamedTuple):
    trip_id: str
    holder: str  # the offer's driver as read ('' none)
    sources: str
    target: str


EXPIRE_TRIP = Script("expire_trip", ExpireTripKeys, ExpireTripArgs, change, n_events=1)


# --- the trip, driven ---------------------------------------------------------------
class AdvanceKeys(NamedTuple):
    trip: str
    trip_events: str
    counts: str
    events: str

    @classmethod
    def of(cls, trip_id: str) -> AdvanceKeys:
        r = ids.region_of(trip_id)
        return cls(**_trip(trip_id), counts=keys.trip_status_counts(r), events=keys.events(r))


class AdvanceArgs(NamedTuple):
    driver_id: str
    sources: str
    target: str
    stamp: str
    event: str


# Every step of statemachine.ADVANCES: arrive, start.
ADVANCE_TRIP = Script("advance_trip", AdvanceKeys, AdvanceArgs, change, n_events=1)


class CompleteKeys(NamedTuple):
    trip: str
    trip_events: str
    driver: str
    geo: str
    supply: str
    offers: str
    rider_active: str
    counts: str
    events: str
    active: str

    @classmethod
    def of(cls, trip_id: str, driver_id: str, driver_product: str,
           rider_id: str) -> CompleteKeys:
        r = ids.region_of(trip_id)
        return cls(**_trip(trip_id), **_driver(driver_id, driver_product),
                   rider_active=keys.rider_active(rider_id), counts=keys.trip_status_counts(r),
                   events=keys.events(r), active=keys.active_trips(r))


class CompleteArgs(NamedTuple):
    driver_id: str
    sources: str
    target: str
    fare: str  # the final fare, JSON money


COMPLETE_TRIP = Script("complete_trip", CompleteKeys, CompleteArgs, change, n_events=1)


class DriverCancelKeys(NamedTuple):
    trip: str
    trip_events: str
    driver: str
    geo: str
    supply: str
    offers: str
    driver_trips: str
    pending: str
    pickups: str
    demand: str
    expiry: str
    counts: str
    events: str

    @classmethod
    def of(cls, trip_id: str, driver_id: str, driver_product: str,
           trip_product: str) -> DriverCancelKeys:
        r = ids.region_of(trip_id)
        return cls(**_trip(trip_id), **_driver(driver_id, driver_product),
                   driver_trips=keys.driver_trips(driver_id), **_queue(r, trip_product),
                   counts=keys.trip_status_counts(r), events=keys.events(r))


class DriverCancelArgs(NamedTuple):
    driver_id: str
    sources: str
    target: str
    reason: str  # '' for none
    expiry_ms: int  # TRIP_EXPIRY_S: the trip's fresh window to find a driver


CANCEL_TRIP_BY_DRIVER = Script("cancel_trip_by_driver", DriverCancelKeys, DriverCancelArgs,
                               change, n_events=1)


class ReleaseKeys(NamedTuple):
    driver: str
    geo: str
    supply: str
    offers: str
    offer_deadlines: str
    trip: str

    @classmethod
    def of(cls, driver_id: str, product: str, trip_id: str) -> ReleaseKeys:
        return cls(**_driver(driver_id, product),
                   offer_deadlines=keys.offer_deadlines(ids.region_of(driver_id)),
                   trip=keys.trip(trip_id))


class ReleaseArgs(NamedTuple):
    trip_id: str
    holding: str  # statuses in which a driver holds a trip


RELEASE_DRIVER_AFTER_CANCEL = Script("release_driver_after_cancel", ReleaseKeys, ReleaseArgs,
                                     became, waits=False)


# --- dispatch reads ---------------------------------------------------------------
class NearKeys(NamedTuple):
    pending: str
    pickups: str

    @classmethod
    def of(cls, region: str, product: str) -> NearKeys:
        return cls(keys.pending(region, product), keys.pickups(region, product))


class NearArgs(NamedTuple):
    lat: str
    lon: str
    radius_m: float
    wanted: int  # how many to return
    scanned: int  # how many of the oldest to look at


OLDEST_WAITING_NEAR = Script("oldest_waiting_near", NearKeys, NearArgs, waiting, waits=False)


SCRIPTS: tuple[Script, ...] = (
    REGISTER_DRIVER, SET_DRIVER_ONLINE, SET_DRIVER_OFFLINE, UPDATE_DRIVER_LOCATION,
    APPLY_TRIP_RATING, OFFER_TRIP_TO_DRIVER, ACCEPT_OFFER, DECLINE_OFFER, EXPIRE_OFFER,
    EXPIRE_TRIP, ADVANCE_TRIP, COMPLETE_TRIP, CANCEL_TRIP_BY_DRIVER,
    RELEASE_DRIVER_AFTER_CANCEL, OLDEST_WAITING_NEAR,
)

LIBRARY = lua_library("ridehail_driver_service", "driver", LUA_DIR, SCRIPTS,
                      (TRIP_LIBRARY, DRIVER_LIBRARY, MATCHING_LIBRARY))

__all__ = ["LIBRARY", "SCRIPTS", "Became", "Change", "Waiting"]
