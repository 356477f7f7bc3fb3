"""Operations routes, and every answer checked against the served OpenAPI
document (so the document describes what clients really get)."""

from __future__ import annotations

import asyncio

import jsonschema
import orjson
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.client import SseReader, read_sse
from tests.helpers.e2e import (
    assigned_trip,
    near,
    next_offer,
    request_trip,
    spot,
)
from tests.waiting import eventually


async def test_health_readiness_metrics_and_dashboard(new_client, ops, system):
    c = new_client()
    assert (await c.get("/healthz")).status == 200
    # Anyone: the status alone. The ops role or the operations listener: every check.
    assert (await c.get("/readyz")).body == {"status": "ready"}
    everything = {"redis": "ok", "trip_service": "ok", "driver_service": "ok",
                  "live_events": "ok", "functions": "ok"}
    assert (await ops.get("/readyz")).body["checks"] == everything
    listener = new_client()
    listener.base = system.ops_url
    ready = await listener.get("/readyz")
    assert ready.status == 200 and ready.body["checks"] == everything
    assert (await listener.get("/v1/me")).status == 404  # nothing else there
    page = await c.get("/")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert (await c.get("/metrics")).status == 401
    metrics = await ops.get("/metrics")
    assert metrics.status == 200
    assert "http_requests_total" in (await listener.get("/metrics")).text
    for name in (
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "circuit_breaker_state",
        "gateway_upstream_request_duration_seconds",
        "consumer_group_lag",
        "dead_letter_stream_length",
    ):
        assert name in metrics.text, name


async def test_the_ops_overview(ops, rider):
    r = await rider()
    trip = await request_trip(r, spot(), product="premium")
    overview = await ops.get("/v1/ops/overview")
    assert overview.status == 200, overview
    body = overview.body
    assert "missing" not in body
    assert body["trips_by_status"]["requested"] >= 1
    assert any(p["trip_id"] == trip["id"] for p in body["pending"])
    assert "events_per_s" in body and "sse_clients" in body
    await r.post(f"/v1/trips/{trip['id']}/cancel")
    assert (await r.get("/v1/ops/overview")).status == 403


async def test_the_ops_event_stream_carries_every_event(ops, rider, http, system):
    async with http.get(
        f"{system.url}/v1/ops/events", headers={"Authorization": f"Bearer {ops.token}"}
    ) as resp:
        assert resp.status == 200
        stream = SseReader(resp)
        r = await rider()
        trip = await request_trip(r, spot())
        await r.post(f"/v1/trips/{trip['id']}/cancel")
        seen = []
        while len([m for m in seen if m["data"].get("trip_id") == trip["id"]]) < 2:
            message = await asyncio.wait_for(stream.next(), 15)
            assert message is not None
            seen.append(message)
        mine = [m["event"] for m in seen if m["data"].get("trip_id") == trip["id"]]
        assert mine == ["trip.requested", "trip.cancelled"]
        # Resume from the first of them: the rest is replayed.
        first_id = next(m["id"] for m in seen if m["data"].get("trip_id") == trip["id"])
    async with http.get(
        f"{system.url}/v1/ops/events",
        headers={"Authorization": f"Bearer {ops.token}", "Last-Event-ID": first_id},
    ) as resp:
        message = await asyncio.wait_for(SseReader(resp).next(), 15)
        assert message["event"] == "trip.cancelled" and message["data"]["trip_id"] == trip["id"]


@pytest.fixture
async def spec(new_client):
    doc = (await new_client().get("/openapi.json")).body
    registry = Registry().with_resource("urn:api", Resource.from_contents(doc, default_specification=DRAFT202012))

    def escape(part: str) -> str:
        return part.replace("~", "~0").replace("/", "~1")

    def check(method: str, path: str, status: int, body) -> None:
        content = doc["paths"][path][method.lower()]["responses"][str(status)]["content"]
        ctype = next(iter(content))
        # A reference into the document, so its own `#/components/...` refs resolve.
        pointer = "/".join(
            escape(p)
            for p in ("paths", path, method.lower(), "responses", str(status), "content", ctype,
                      "schema")
        )
        if ctype != "text/event-stream":
            jsonschema.validate(body, {"$ref": f"urn:api#/{pointer}"}, registry=registry)
            return
        # `body`: the messages as read ({id, event, data parsed}). On the wire
        # `data` is text; its contentSchema describes the JSON it holds.
        data = doc["components"]["schemas"]["SseMessage"]["properties"]["data"]
        assert data["type"] == "string" and data["contentMediaType"] == "application/json"
        for message in body:
            wire = {**message, "data": orjson.dumps(message["data"]).decode()}
            jsonschema.validate(wire, {"$ref": f"urn:api#/{pointer}"}, registry=registry)
            jsonschema.validate(
                message["data"], {"$ref": "urn:api" + data["contentSchema"]["$ref"]},
                registry=registry,
            )

    return check


async def test_answers_match_the_openapi_document(spec, rider, driver, new_client, ops):
    c = new_client()
    place = spot()
    owner, d, trip = await assigned_trip(rider, driver)
    spec("GET", "/v1/me", 200, (await owner.get("/v1/me")).body)
    spec("GET", "/v1/me", 200, (await d.get("/v1/me")).body)
    spec("GET", "/v1/me", 200, (await ops.get("/v1/me")).body)
    spec("GET", "/v1/trips/{id}", 200, (await owner.get(f"/v1/trips/{trip['id']}")).body)
    spec("GET", "/v1/trips", 200, (await owner.get("/v1/trips")).body)
    spec("GET", "/v1/driver/trip", 200, (await d.get("/v1/driver/trip")).body)
    est = await owner.post("/v1/estimates", {"pickup": place, "dropoff": near(place, 0.004)})
    spec("POST", "/v1/estimates", 200, est.body)
    nearby = await owner.get("/v1/drivers/nearby", params={"lat": place["lat"], "lon": place["lon"]})
    spec("GET", "/v1/drivers/nearby", 200, nearby.body)
    for action in ("arrive", "start", "complete"):
        reply = await d.post(f"/v1/trips/{trip['id']}/{action}")
        spec("POST", f"/v1/trips/{{id}}/{action}", 200, reply.body)
    rated = await owner.post(f"/v1/trips/{trip['id']}/rating", {"stars": 4})
    spec("POST", "/v1/trips/{id}/rating", 200, rated.body)
    timeline = await owner.get(f"/v1/trips/{trip['id']}/timeline")
    spec("GET", "/v1/trips/{id}/timeline", 200, timeline.body)
    ops_timeline = await ops.get(f"/v1/trips/{trip['id']}/timeline")
    spec("GET", "/v1/trips/{id}/timeline", 200, ops_timeline.body)
    for reader in (owner, ops):  # the trip has ended: the stream ends too
        status_, messages, ended = await read_sse(
            reader.session, f"{reader.base}/v1/trips/{trip['id']}/events", reader.token
        )
        assert status_ == 200 and ended and messages
        spec("GET", "/v1/trips/{id}/events", 200, messages)
    spec("GET", "/v1/ops/overview", 200, (await ops.get("/v1/ops/overview")).body)
    spec("GET", "/readyz", 200, (await c.get("/readyz")).body)
    spec("GET", "/healthz", 200, (await c.get("/healthz")).body)
    bad = await c.post("/v1/riders", {"user_name": "?"})
    spec("POST", "/v1/riders", 422, bad.body)
    session = await c.post("/v1/sessions", {"user_name": "ops", "password": "ops-password-for-tests"})
    spec("POST", "/v1/sessions", 201, session.body)
    # An offer, and a new trip and its cancellation.
    d2 = await driver(at=near(place, 0.0003))
    r2 = await rider()
    created = await r2.post(
        "/v1/trips", {"pickup": place, "dropoff": near(place, 0.004), "product": "standard"}
    )
    spec("POST", "/v1/trips", 201, created.body)
    offer = await next_offer(d2, created.body["id"])
    spec("GET", "/v1/driver/offers/next", 200, offer)
    accepted = await d2.post(f"/v1/driver/offers/{created.body['id']}/accept")
    spec("POST", "/v1/driver/offers/{trip_id}/accept", 200, accepted.body)
    back = await d2.post(f"/v1/trips/{created.body['id']}/cancel")
    spec("POST", "/v1/trips/{id}/cancel", 200, back.body)
    status = await d2.post("/v1/driver/status", {"status": "offline"})
    spec("POST", "/v1/driver/status", 200, status.body)
    cancelled = await r2.post(f"/v1/trips/{created.body['id']}/cancel")
    spec("POST", "/v1/trips/{id}/cancel", 200, cancelled.body)
    signup = await c.post(
        "/v1/riders",
        {"user_name": "schema_" + place["lat"].__str__().replace(".", ""), "password": "x" * 8,
         "first_name": "A", "last_name": "B", "email": "a@b.co", "age": 20},
    )
    spec("POST", "/v1/riders", 201, signup.body)

    async def rated_driver():
        me = await d.get("/v1/me")
        return me.body.get("rating") is not None

    await eventually(rated_driver, timeout=10, interval=0.1)
    spec("GET", "/v1/me", 200, (await d.get("/v1/me")).body)


async def test_logout_ends_the_session_at_once(rider):
    r = await rider()
    assert (await r.get("/v1/me")).status == 200
    out = await r.call("DELETE", "/v1/sessions/current")
    assert out.status == 204
    again = await r.get("/v1/me")
    assert again.status == 401
    assert again.headers["Content-Type"].startswith("application/problem+json")


async def test_the_dashboard_files_are_served(new_client):
    c = new_client()
    page = await c.get("/")
    assert page.status == 200
    from gateway.routes.site import STATIC_DIR

    for path in sorted(p for p in STATIC_DIR.iterdir() if p.is_file())[:5]:
        resp = await c.get(f"/static/{path.name}")
        assert resp.status == 200
        assert resp.text == path.read_text()
    assert (await c.get("/static/../gateway/app.py")).status == 404


async def test_the_assigned_driver_follows_the_trip_live(rider, driver, http, system):
    owner, d, trip = await assigned_trip(rider, driver)
    async with http.get(
        f"{system.url}/v1/trips/{trip['id']}/events",
        headers={"Authorization": f"Bearer {d.token}"},
    ) as resp:
        assert resp.status == 200
        stream = SseReader(resp)
        seen = []
        while not seen or seen[-1]["event"] != "trip.assigned":
            seen.append(await asyncio.wait_for(stream.next(), 15))
        assert (await d.post(f"/v1/trips/{trip['id']}/arrive")).status == 200
        arrived = await asyncio.wait_for(stream.next(), 15)
        assert arrived["event"] == "trip.driver_arrived"
        assert arrived["data"]["driver_id"] == d.subject_id
        await owner.post(f"/v1/trips/{trip['id']}/cancel")
        ended = []
        while (message := await asyncio.wait_for(stream.next(), 15)) is not None:
            ended.append(message["event"])
        assert ended[-1] == "trip.cancelled"
