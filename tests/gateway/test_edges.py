"""The status table of API.md at the edge: malformed requests never reach a
handler's logic, and every error is problem+json."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.helpers.gateway import bearer, ops_headers, rider_body, sign_up_and_login
from tests.waiting import eventually


async def problem(resp, status: int) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["status"] == status and body["title"] and body["type"]
    return body


async def test_a_body_that_is_not_json_is_400(client):
    resp = await client.post(
        "/v1/riders", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    await problem(resp, 400)


async def test_a_body_that_is_not_application_json_is_415(client):
    resp = await client.post("/v1/riders", data=b"user_name=x", headers={"Content-Type": "text/plain"})
    await problem(resp, 415)


async def test_a_body_over_64_kib_is_413(client):
    resp = await client.post(
        "/v1/riders",
        data=b'{"bio": "' + b"x" * (65 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    await problem(resp, 413)


@pytest.mark.parametrize("body", [b"[]", b"42", b'"text"', b"null"])
async def test_json_that_is_not_an_object_is_422(client, body):
    resp = await client.post(
        "/v1/riders", data=body, headers={"Content-Type": "application/json"}
    )
    problem_body = await problem(resp, 422)
    assert problem_body["errors"][0]["field"] == "body"


async def test_a_missing_body_is_400(client):
    resp = await client.post("/v1/riders")
    await problem(resp, 400)


async def test_query_parameters_wrong_type_is_400_out_of_range_is_422(client):
    session = await sign_up_and_login(client, "querier")
    h = bearer(session["token"])
    resp = await client.get("/v1/trips?limit=abc", headers=h)
    body = await problem(resp, 400)
    assert body["errors"][0]["field"] == "limit"
    resp = await client.get("/v1/trips?limit=0", headers=h)
    body = await problem(resp, 422)
    assert body["errors"][0]["field"] == "limit"
    resp = await client.get("/v1/drivers/nearby?lat=95&lon=500", headers=h)
    body = await problem(resp, 422)
    assert {e["field"] for e in body["errors"]} == {"lat", "lon"}
    resp = await client.get("/v1/drivers/nearby", headers=h)
    body = await problem(resp, 422)
    assert {e["field"] for e in body["errors"]} == {"lat", "lon"}


async def test_a_point_outside_the_region_is_422_before_any_upstream(client):
    session = await sign_up_and_login(client, "faraway")
    h = bearer(session["token"])
    far = {"lat": 40.7, "lon": -74.0}
    near = {"lat": 37.77, "lon": -122.42}
    resp = await client.post("/v1/estimates", json={"pickup": far, "dropoff": near}, headers=h)
    body = await problem(resp, 422)
    assert body["errors"][0]["field"] == "pickup"
    resp = await client.post(
        "/v1/trips", json={"pickup": far, "dropoff": near, "product": "xl"}, headers=h
    )
    await problem(resp, 422)
    resp = await client.get("/v1/drivers/nearby?lat=40.7&lon=-74", headers=h)
    await problem(resp, 422)


async def test_a_dropoff_past_the_reach_is_422_and_one_inside_it_passes(client):
    """MAX_TRIP_DISTANCE_M (100 km by default): a drop-off in New York for a
    pickup in San Francisco names the drop-off; one 90 km away is accepted
    (it reaches the upstream, down here: 503)."""
    session = await sign_up_and_login(client, "longride")
    h = bearer(session["token"])
    pickup = {"lat": 37.77, "lon": -122.42}
    for dropoff in ({"lat": 40.7, "lon": -74.0}, {"lat": 38.68, "lon": -122.42}):
        for path, extra in (("/v1/estimates", {}), ("/v1/trips", {"product": "standard"})):
            resp = await client.post(
                path, json={"pickup": pickup, "dropoff": dropoff, **extra}, headers=h
            )
            body = await problem(resp, 422)
            assert [e["field"] for e in body["errors"]] == ["dropoff"], body
            assert "within 100 km of the pickup" in body["errors"][0]["message"], body
    near = {"lat": 37.77 + 0.81, "lon": -122.42}  # about 90 km north
    resp = await client.post("/v1/estimates", json={"pickup": pickup, "dropoff": near}, headers=h)
    await problem(resp, 503)


async def test_a_wrong_role_is_403_and_no_token_is_401(client):
    session = await sign_up_and_login(client, "notadriver")
    h = bearer(session["token"])
    for method, path in [
        ("POST", "/v1/driver/status"),
        ("PUT", "/v1/driver/location"),
        ("GET", "/v1/driver/offers/next"),
        ("GET", "/v1/driver/trip"),
        ("GET", "/v1/ops/overview"),
        ("GET", "/v1/ops/events"),
        ("GET", "/v1/ops/topology"),
        ("POST", "/v1/trips/trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8/arrive"),
    ]:
        resp = await client.request(method, path, headers=h, json={})
        await problem(resp, 403)
        resp = await client.request(method, path, json={})
        await problem(resp, 401)


async def test_authentication_comes_before_validation(client):
    resp = await client.post("/v1/trips", data=b"garbage", headers={"Content-Type": "text/plain"})
    await problem(resp, 401)


async def test_unknown_routes_and_methods_are_problems(client):
    await problem(await client.get("/v1/nothing-here"), 404)
    resp = await client.put("/v1/riders", json={})
    await problem(resp, 405)
    assert "POST" in resp.headers["Allow"]


async def test_a_malformed_trip_id_is_404_without_an_upstream(client):
    session = await sign_up_and_login(client, "idcheck")
    for path in ("/v1/trips/nope", "/v1/trips/rdr_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8"):
        await problem(await client.get(path, headers=bearer(session["token"])), 404)


async def test_the_request_id_is_echoed_or_made(client):
    resp = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    resp = await client.get("/healthz")
    assert resp.headers["X-Request-ID"]
    resp = await client.post("/v1/riders", json={}, headers={"X-Request-ID": "r-422"})
    assert resp.status == 422 and resp.headers["X-Request-ID"] == "r-422"


async def test_server_owned_fields_cannot_be_set(client):
    resp = await client.post(
        "/v1/riders",
        json=rider_body("owner", id="rdr_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8", role="ops"),
    )
    profile = await resp.json()
    assert profile["role"] == "rider"
    assert profile["id"] != "rdr_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8"


async def test_a_client_that_leaves_mid_body_is_counted_499_not_an_error(client, caplog):
    """A client that closes its connection before the body is read is no
    server error: nothing is logged at ERROR, and /metrics counts a 499."""

    def closed_count(text: str) -> float:
        line = next((ln for ln in text.splitlines() if ln.startswith("http_requests_total{")
                     and 'route="/v1/riders"' in ln and 'status="499"' in ln), None)
        return float(line.rsplit(" ", 1)[1]) if line else 0.0

    ops = await ops_headers(client)
    before = closed_count(await (await client.get("/metrics", headers=ops)).text())
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"POST /v1/riders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n{\"user_name\":")
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    async def counted() -> bool:
        return closed_count(await (await client.get("/metrics", headers=ops)).text()) == before + 1

    await eventually(counted, message="the abandoned request was not counted as 499")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
