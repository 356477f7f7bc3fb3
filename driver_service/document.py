"""The driver document (RedisJSON at `keys.driver(id)`).

A driver is *available* when online, located, not on a trip and without an
open offer; exactly then it is in the GEO index of its product and counted in
the supply of its cell (`supply_cell`). `offer` is the open offer (at most
one), `trip_id` the trip the driver holds. `rating` is the average of the
riders' stars (`rating_sum` / `rating_count`), null before the first.

Every node of a RedisJSON document costs memory (common/trip/document.py
says how much), so a document holds no null or zero member: a missing
`offer`, `trip_id`, `location`, `rating` is none yet, a missing count zero,
and `region` comes from the id. The profile (`PROFILE_FIELDS`: names, car,
registered_at), fixed at registration, is one member `profile` holding its
JSON text: no script reads it, `expand` brings it to the top for Python.
Documents written before carried every field at the top, with nulls and
zeros; they read the same.
"""

from __future__ import annotations

from typing import Any

import orjson

from common.ids import region_of
from common.packed import unpack
from common.trip.statemachine import WITH_DRIVER


# The member holding the profile's JSON text, and what it holds
# (registered_at is stamped into it by register_driver.lua).
PROFILE = "profile"
PROFILE_FIELDS = ("first_name", "last_name", "car", "registered_at")


def new_driver(driver_id: str, first_name: str, last_name: str, car: dict,
               product: str) -> dict:
    profile = {"first_name": first_name, "last_name": last_name, "car": car}
    return {
        "id": driver_id,
        PROFILE: orjson.dumps(profile).decode(),
        "product": product,
        "status": "offline",
    }


def expand(doc: dict) -> dict:
    """The document with its profile's fields at the top."""
    return unpack(doc, PROFILE)


def same_registration(doc: dict, first_name: str, last_name: str, car: dict, product: str) -> bool:
    doc = expand(doc)
    return (
        doc.get("first_name") == first_name
        and doc.get("last_name") == last_name
        and doc.get("car") == car
        and doc.get("product") == product
    )


def is_available(doc: dict) -> bool:
    return (
        doc.get("status") == "online"
        and doc.get("trip_id") is None
        and doc.get("offer") is None
        and doc.get("location") is not None
    )


def render(doc: dict[str, Any]) -> dict[str, Any]:
    doc = expand(doc)
    out = {
        "id": doc["id"],
        "region": region_of(doc["id"]),
        "first_name": doc["first_name"],
        "last_name": doc["last_name"],
        "car": doc["car"],
        "product": doc["product"],
        "status": doc["status"],
        "rating": doc.get("rating"),
        "ratings": doc.get("rating_count", 0),
        "location": doc.get("location"),
        "available": is_available(doc),
        "active_trip_id": doc.get("trip_id"),
        "registered_at": doc.get("registered_at"),
    }
    if doc.get("online_since"):
        out["online_since"] = doc["online_since"]
    if doc.get("offer"):
        out["open_offer_trip_id"] = doc["offer"]["trip_id"]
    return out


def render_offer(offer: dict) -> dict:
    return {k: v for k, v in offer.items() if k != "expires_ms"}


def holds_trip(trip: dict, driver_id: str) -> bool:
    return trip.get("driver_id") == driver_id and trip.get("status") in WITH_DRIVER
