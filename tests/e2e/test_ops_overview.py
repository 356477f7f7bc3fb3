"""The ops overview through the gateway: where the online drivers are, the
active trips, the regions and timers, events per second, and the OpenAPI
document that describes them."""

from __future__ import annotations

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from common.models import OPS_LIST_LIMIT
from tests.helpers.e2e import E2E_ENV, near, next_offer, request_trip, spot
from tests.waiting import eventually


async def overview(ops) -> dict:
    reply = await ops.get("/v1/ops/overview")
    assert reply.status == 200, reply
    assert "missing" not in reply.body, reply.body
    return reply.body


def position(body: dict, driver_id: str) -> dict | None:
    found = [p for p in body["drivers"]["locations"] if p["driver_id"] == driver_id]
    return found[0] if found else None


def active(body: dict, trip_id: str) -> dict | None:
    found = [t for t in body["active_trips"] if t["trip_id"] == trip_id]
    return found[0] if found else None


async def test_drivers_and_active_trips_follow_a_whole_trip(ops, rider, driver, new_client):
    place = spot()
    at = near(place, 0.0005)
    d = await driver(at=at)
    body = await overview(ops)
    mine = position(body, d.subject_id)
    assert mine["status"] == "available" and mine["product"] == "standard"
    assert (mine["location"]["lat"], mine["location"]["lon"]) == (at["lat"], at["lon"])
    assert body["drivers"]["locations_total"] >= len(body["drivers"]["locations"]) >= 1

    r = await rider()
    trip = await request_trip(r, place)
    listed = active(await overview(ops), trip["id"])
    assert listed["status"] == "requested"
    assert listed["pickup"] == place and listed["dropoff"] == trip["dropoff"]
    assert listed["requested_at"] == trip["requested_at"] and "driver_id" not in listed

    await next_offer(d, trip["id"])
    body = await overview(ops)
    assert position(body, d.subject_id)["status"] == "offered"
    assert active(body, trip["id"])["offered_to"] == d.subject_id
    assert (await d.post(f"/v1/driver/offers/{trip['id']}/accept")).status == 200
    body = await overview(ops)
    assert position(body, d.subject_id) | {"location": None} == {
        "driver_id": d.subject_id, "region": "sf", "product": "standard",
        "status": "on_trip", "trip_id": trip["id"], "location": None,
    }
    assert active(body, trip["id"])["status"] == "assigned"
    assert active(body, trip["id"])["driver_id"] == d.subject_id
    check_against_document(await new_client().get("/openapi.json"), body)

    for action in ("arrive", "start", "complete"):
        assert (await d.post(f"/v1/trips/{trip['id']}/{action}")).status == 200
    body = await overview(ops)
    assert active(body, trip["id"]) is None
    assert position(body, d.subject_id)["status"] == "available"
    assert (await d.post("/v1/driver/status", {"status": "offline"})).status == 200
    assert position(await overview(ops), d.subject_id) is None


async def test_regions_timers_and_events_per_second(ops, rider):
    body = await overview(ops)
    assert "sf" in {region["name"] for region in body["regions"]}
    sf = next(region for region in body["regions"] if region["name"] == "sf")
    assert sf["bounds"] == {"min_lat": 37.70, "min_lon": -122.52,
                            "max_lat": 37.83, "max_lon": -122.35}
    assert body["offer_timeout_s"] == float(E2E_ENV["OFFER_TIMEOUT_S"])
    assert body["trip_expiry_s"] == float(E2E_ENV["TRIP_EXPIRY_S"])
    assert body["dispatch_radius_m"] == float(E2E_ENV["DISPATCH_RADIUS_M"])

    r = await rider()
    trip = await request_trip(r, spot())
    assert (await r.post(f"/v1/trips/{trip['id']}/cancel")).status == 200

    async def rate():
        value = (await overview(ops))["events_per_s"]
        return value is not None and value > 0

    await eventually(rate, timeout=20, interval=0.25, message="events per second from Redis")


async def test_the_openapi_document_describes_the_overview(new_client):
    doc = (await new_client().get("/openapi.json")).body
    schemas = doc["components"]["schemas"]
    ok = doc["paths"]["/v1/ops/overview"]["get"]["responses"]["200"]
    assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/OpsOverview")
    overview_schema = schemas["OpsOverview"]["properties"]
    for name in ("active_trips", "active_trips_total", "drivers", "regions", "offer_timeout_s",
                 "trip_expiry_s", "dispatch_radius_m", "events_per_s"):
        assert name in overview_schema, name
    limit = f"{OPS_LIST_LIMIT:,}"
    assert limit in overview_schema["active_trips"]["description"]
    assert set(schemas["ActiveTrip"]["required"]) >= {
        "trip_id", "status", "product", "pickup", "dropoff", "requested_at"}
    assert set(schemas["ActiveTrip"]["properties"]["status"]["enum"]) == {
        "requested", "assigned", "arrived", "in_progress"}
    drivers = schemas["OpsDrivers"]["properties"]
    assert limit in drivers["locations"]["description"]
    position_schema = schemas["DriverPosition"]
    assert set(position_schema["required"]) >= {"driver_id", "product", "status", "location"}
    assert set(position_schema["properties"]["status"]["enum"]) == {
        "available", "offered", "on_trip"}
    assert set(schemas["Region"]["required"]) == {"name", "bounds"}


def check_against_document(reply, body: dict) -> None:
    doc = reply.body
    registry = Registry().with_resource(
        "urn:api", Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    pointer = "paths/~1v1~1ops~1overview/get/responses/200/content/application~1json/schema"
    jsonschema.validate(body, {"$ref": f"urn:api#/{pointer}"}, registry=registry)
