"""Public shapes built from the internal documents of the services.

Only members of the public contract leave the gateway: internal bookkeeping
on a trip (which drivers declined it, offer state, indexes) stays inside.
"""

from __future__ import annotations

from typing import Any

from common.events import PUBLIC_TRIP_TYPES
from common.trip.statemachine import Status, transition

from . import models

# The members of each public object are the fields of its response model, so
# what leaves the gateway and what the OpenAPI document promises cannot drift.
# `driver` and `missing` of a trip are composed here, not picked.
TRIP_FIELDS = tuple(f for f in models.Trip.model_fields if f not in ("driver", "missing"))
TRIP_DRIVER_FIELDS = tuple(models.TripDriver.model_fields)
OFFER_FIELDS = tuple(models.Offer.model_fields)
# A trip that expires names the driver whose offer lapsed with it, if any.
EXPIRED_EVENT = transition("expire").event
# Driver state merged into a driver's profile (the rest comes from identity).
DRIVER_FIELDS = ("car", "product", "status", "available", "active_trip_id", "rating", "location")


def _pick(doc: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: doc[k] for k in fields if doc.get(k) is not None}


def trip(doc: dict[str, Any]) -> dict[str, Any]:
    out = _pick(doc, TRIP_FIELDS)
    if out.get("status") != Status.REQUESTED:
        out.pop("queue_position", None)
    return out


def trip_driver(doc: dict[str, Any]) -> dict[str, Any]:
    return _pick(doc, TRIP_DRIVER_FIELDS)


def offer(doc: dict[str, Any]) -> dict[str, Any]:
    return _pick(doc, OFFER_FIELDS)


def rider_profile(profile: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in profile.items() if k != "password"}


def driver_profile(profile: dict[str, Any], driver: dict[str, Any]) -> dict[str, Any]:
    out = dict(profile)
    out.update(_pick(driver, DRIVER_FIELDS))
    out.setdefault("rating", None)
    return out


def public_event(envelope: dict[str, Any]) -> dict[str, Any] | None:
    """An event envelope as a trip's rider or driver sees it, or None when it
    is not part of the trip's public story. A trip that expires may name the
    driver whose offer lapsed with it: that driver never had the trip."""
    if envelope.get("type") not in PUBLIC_TRIP_TYPES:
        return None
    if envelope.get("type") == EXPIRED_EVENT and envelope.get("driver_id"):
        envelope = {k: v for k, v in envelope.items() if k != "driver_id"}
        data = envelope.get("data")
        if isinstance(data, dict):
            envelope["data"] = {k: v for k, v in data.items() if k != "driver_id"}
    return envelope


# An event of a trip's timeline as trip_service shapes it (docs/internals.md:
# GET /internal/trips/{id}/timeline): the members that leave the gateway.
TIMELINE_FIELDS = ("id", "stream_id", "type", "occurred_at", "producer", "trace_id",
                   "driver_id", "data", "deliveries")


def timeline_events(events: list[dict[str, Any]], everything: bool) -> list[dict[str, Any]]:
    """The timeline for ops (`everything`: each event with its deliveries) or
    for the trip's rider and driver (its public story, no deliveries)."""
    if everything:
        return [_pick(e, TIMELINE_FIELDS) for e in events]
    fields = tuple(f for f in TIMELINE_FIELDS if f != "deliveries")
    return [_pick(seen, fields) for e in events if (seen := public_event(e)) is not None]
