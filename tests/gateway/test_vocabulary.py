"""GET /v1/vocabulary: the trip's statuses, events, transitions and the
products, as API.md states them, served from common's one definition."""

from __future__ import annotations

from decimal import Decimal

from common.fares import CATALOG
from gateway import models

# The public contract (API.md), written out: what each trip event means.
STATUS_AFTER = {
    "trip.requested": "requested",
    "trip.offered": None,
    "trip.offer_declined": None,
    "trip.offer_expired": None,
    "trip.assigned": "assigned",
    "trip.driver_cancelled": "requested",
    "trip.driver_arrived": "arrived",
    "trip.started": "in_progress",
    "trip.completed": "completed",
    "trip.cancelled": "cancelled",
    "trip.expired": "expired",
    "trip.rated": None,
}
DISPATCH_ONLY = {"trip.offered", "trip.offer_declined", "trip.offer_expired"}


async def vocabulary(client) -> dict:
    resp = await client.get("/v1/vocabulary")
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "application/json"
    assert resp.headers["Cache-Control"] == "public, max-age=300"
    return await resp.json()


async def test_statuses_in_lifecycle_order_with_their_classes(client):
    body = await vocabulary(client)  # no token: the route is public
    models.Vocabulary.model_validate(body)
    statuses = {s["name"]: s for s in body["trip_statuses"]}
    assert list(statuses) == ["requested", "assigned", "arrived", "in_progress",
                              "completed", "cancelled", "expired"]
    assert [n for n, s in statuses.items() if s["active"]] == list(statuses)[:4]
    assert [n for n, s in statuses.items() if s["terminal"]] == list(statuses)[4:]
    assert [n for n, s in statuses.items() if s["with_driver"]] == [
        "assigned", "arrived", "in_progress"]


async def test_every_trip_event_with_the_status_it_leads_to(client):
    events = (await vocabulary(client))["trip_events"]
    assert {e["type"]: e["status"] for e in events} == STATUS_AFTER
    assert [e["type"] for e in events][0] == "trip.requested"
    assert {e["type"] for e in events if not e["public"]} == DISPATCH_ONLY


async def test_transitions_lead_where_their_events_say(client):
    body = await vocabulary(client)
    moves = {t["action"]: (t["from"], t["to"], t["actor"]) for t in body["transitions"]}
    assert moves["accept"] == (["requested"], "assigned", "driver")
    assert moves["rider_cancel"] == (["requested", "assigned", "arrived"], "cancelled", "rider")
    assert moves["driver_cancel"] == (["assigned", "arrived"], "requested", "driver")
    assert moves["expire"] == (["requested"], "expired", "sweeper")
    # Every status is reached by the request or a transition, and every status
    # an event announces is a transition's target.
    targets = {to for _, to, _ in moves.values()}
    assert {s["name"] for s in body["trip_statuses"]} == targets | {"requested"}
    assert {e["status"] for e in body["trip_events"]} - {None} <= targets | {"requested"}


async def test_products_are_the_catalog_with_its_fares(client):
    products = (await vocabulary(client))["products"]
    assert [p["name"] for p in products] == list(CATALOG)
    for p in products:
        product = CATALOG[p["name"]]
        model = product.fare
        assert p["seats"] == product.seats
        assert (Decimal(p["base"]), Decimal(p["per_km"]), Decimal(p["per_minute"]),
                Decimal(p["minimum"]), p["currency"]) == (
            model.base, model.per_km, model.per_minute, model.minimum, model.currency)
        # Money leaves the server as strings with cents.
        assert all(p[k].count(".") == 1 and len(p[k].split(".")[1]) == 2
                   for k in ("base", "per_km", "per_minute", "minimum"))


async def test_the_document_describes_it_and_the_product_literals_follow_the_catalog(client):
    doc = await (await client.get("/openapi.json")).json()
    op = doc["paths"]["/v1/vocabulary"]["get"]
    assert "security" not in op or op["security"] == []
    ref = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/Vocabulary"
    schemas = doc["components"]["schemas"]
    assert list(schemas["VocabularyTransition"]["properties"]) == ["action", "from", "to", "actor"]
    # One member per product in the ops overview's driver counts.
    drivers = schemas["OpsDrivers"]
    assert drivers["required"] == [*CATALOG, "locations", "locations_total"]
    assert schemas["VocabularyProduct"]["properties"]["name"]["enum"] == list(CATALOG)
