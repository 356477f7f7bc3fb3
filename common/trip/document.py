"""The trip document: the state shared by trip_service and driver_service.

Stored as RedisJSON at `keys.trip(id)`. Fields the public trip object shows
are listed in `PUBLIC_FIELDS`; the rest are bookkeeping for the scripts:
`requested_ms`/`expires_ms`/`started_ms` (server clock), `cell` (surge cell
of the pickup), `offer` (the open offer, at most one), `refused` (drivers who
declined, let an offer expire or cancelled: never offered this trip again).

Every node of a RedisJSON document costs memory (an object some 130 B, each
member 10 B beside its value, a nested object as much again, and an object
of more than 8 members a table twice as large, more than 16 twice again). So:

- a document holds no null or empty member (an absent `offer` is no open
  offer, an absent `refused` nobody refused) and nothing derivable: `region`
  comes from the id and `requested_at` from `requested_ms` (`derived`);
- the request (`REQUEST_FIELDS`: pickup, dropoff, fare estimate, surge,
  distance, duration), fixed when the trip is requested and never changed,
  is one member `request` holding its JSON text, not six members and three
  nested objects. No script writes into it; they read it through
  `load_doc` (common/lua/trips.lua), Python through `expand`, so both see
  the fields at the top as before.

Documents written before kept every field at the top, `region`,
`requested_at`, `refused: []` and `offer: null`; they read the same.
"""

from __future__ import annotations

from typing import Any

import orjson

from common.fares import FARE_MODELS, estimate_duration_s
from common.geo import haversine_m, surge_cell
from common.ids import region_of
from common.packed import unpack
from common.timeutil import iso

# The member holding the request's JSON text, and what it holds.
PACKED = "request"
REQUEST_FIELDS = ("pickup", "dropoff", "fare_estimate", "surge", "distance_m", "duration_s")

PUBLIC_FIELDS = (
    "id",
    "status",
    "rider_id",
    "product",
    "pickup",
    "dropoff",
    "fare_estimate",
    "surge",
    "distance_m",
    "duration_s",
    "requested_at",
    "assigned_at",
    "arrived_at",
    "started_at",
    "completed_at",
    "cancelled_at",
    "cancelled_by",
    "cancel_reason",
    "expired_at",
    "fare",
    "rating",
    "driver_id",
)


def point(lat: float, lon: float) -> dict:
    return {"lat": float(lat), "lon": float(lon)}


def quote(product: str, pickup: dict, dropoff: dict, surge) -> dict:
    """Distance, duration and fare of a ride (the estimate and the frozen fare)."""
    distance = haversine_m(pickup["lat"], pickup["lon"], dropoff["lat"], dropoff["lon"])
    duration = estimate_duration_s(distance)
    model = FARE_MODELS[product]
    return {
        "product": product,
        "fare": model.money(distance, duration, surge),
        "surge": float(surge),
        "distance_m": int(round(distance)),
        "duration_s": duration,
    }


def new_trip(
    trip_id: str, rider_id: str, product: str, pickup: dict, dropoff: dict, surge
) -> dict:
    """The document before the script stamps the server times on it."""
    q = quote(product, pickup, dropoff, surge)
    request = {
        "pickup": pickup,
        "dropoff": dropoff,
        "fare_estimate": q["fare"],
        "surge": q["surge"],
        "distance_m": q["distance_m"],
        "duration_s": q["duration_s"],
    }
    return {
        "id": trip_id,
        "status": "requested",
        "rider_id": rider_id,
        "product": product,
        PACKED: orjson.dumps(request).decode(),
        "cell": surge_cell(pickup["lat"], pickup["lon"]),
    }


def expand(doc: dict) -> dict:
    """The document with its request's fields at the top."""
    return unpack(doc, PACKED)


def requested_at(doc: dict) -> str:
    return doc.get("requested_at") or iso(doc["requested_ms"])


def derived(doc: dict) -> dict:
    """The document with the fields it does not store (`region`,
    `requested_at`): what the views and the cold store read."""
    out = dict(expand(doc))
    out.setdefault("region", region_of(doc["id"]))
    if "requested_ms" in doc:
        out["requested_at"] = requested_at(doc)
    return out


def same_request(doc: dict, rider_id: str, product: str, pickup: dict, dropoff: dict) -> bool:
    doc = expand(doc)
    return (
        doc.get("rider_id") == rider_id
        and doc.get("product") == product
        and doc.get("pickup") == pickup
        and doc.get("dropoff") == dropoff
    )


def render(doc: dict[str, Any], queue_position: int | None = None) -> dict[str, Any]:
    """The trip object of the API (plus `driver_id`) from the document."""
    doc = expand(doc)
    out = {k: doc[k] for k in PUBLIC_FIELDS if doc.get(k) is not None}
    if "requested_at" not in out and "requested_ms" in doc:
        out["requested_at"] = iso(doc["requested_ms"])
    if doc.get("status") == "requested":
        out.pop("driver_id", None)
        if queue_position is not None:
            out["queue_position"] = queue_position
    return out
