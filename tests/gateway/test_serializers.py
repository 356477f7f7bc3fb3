"""What a trip's rider and driver see of its events (API.md: the public story)."""

from __future__ import annotations

from common.events import TRIP_TYPES
from gateway import serializers


def envelope(type_: str, **data) -> dict:
    return {"id": "01J", "type": type_, "trip_id": "trp_sf_1", "driver_id": data.get("driver_id"),
            "data": data, "deliveries": [{"group": "dispatch", "consumer": "host-1-42"}]}


def test_offers_declines_and_their_expiries_are_not_public():
    hidden = {t for t in TRIP_TYPES if serializers.public_event(envelope(t)) is None}
    assert hidden == {"trip.offered", "trip.offer_declined", "trip.offer_expired"}


def test_an_expired_trip_does_not_name_the_driver_whose_offer_lapsed_with_it():
    seen = serializers.public_event(envelope("trip.expired", driver_id="drv_sf_2", reason="no driver"))
    assert "driver_id" not in seen and seen["data"] == {"reason": "no driver"}
    assigned = serializers.public_event(envelope("trip.assigned", driver_id="drv_sf_2"))
    assert assigned["driver_id"] == "drv_sf_2"


def test_the_public_timeline_has_no_deliveries_and_ops_has_them():
    events = [
        {**envelope(t), "occurred_at": "2026-01-01T00:00:00Z", "producer": "trip_service",
         "trace_id": "t"}
        for t in ("trip.requested", "trip.offered", "trip.assigned")
    ]
    public = serializers.timeline_events(events, everything=False)
    assert [e["type"] for e in public] == ["trip.requested", "trip.assigned"]
    assert all("deliveries" not in e for e in public)
    full = serializers.timeline_events(events, everything=True)
    assert [e["type"] for e in full] == ["trip.requested", "trip.offered", "trip.assigned"]
    assert full[0]["deliveries"][0]["consumer"] == "host-1-42"
