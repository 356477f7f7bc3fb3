"""Every row of the status table of API.md, through the running system
(429, 503 and 504 have their own modules: test_rate_limits, test_resilience)."""

from __future__ import annotations

from tests.client import driver_body, rider_body
from tests.helpers.e2e import assigned_trip, near, request_trip, spot, unique


def is_problem(r, status: int) -> dict:
    assert r.status == status, r
    assert r.headers["Content-Type"].startswith("application/problem+json"), r.headers
    assert r.body["status"] == status and r.body["title"]
    assert r.headers.get("X-Request-ID")
    return r.body


async def test_400_body_not_json_and_query_of_the_wrong_type(rider):
    r = await rider()
    is_problem(
        await r.call("POST", "/v1/trips", data=b"{oops", headers={"Content-Type": "application/json"}),
        400,
    )
    body = is_problem(await r.get("/v1/trips", params={"limit": "many"}), 400)
    assert body["errors"][0]["field"] == "limit"
    is_problem(await r.get("/v1/drivers/nearby", params={"lat": "north", "lon": "1"}), 400)


async def test_401_no_token_unknown_token_bad_credentials(new_client):
    c = new_client()
    is_problem(await c.get("/v1/me"), 401)
    is_problem(await c.get("/v1/me", token="A" * 43), 401)
    name = unique("cred")
    assert (await c.post("/v1/riders", rider_body(name))).status == 201
    is_problem(await c.post("/v1/sessions", {"user_name": name, "password": "wrong-password"}), 401)
    is_problem(await c.post("/v1/sessions", {"user_name": "nobody-here", "password": "whatever1"}), 401)


async def test_403_a_driver_calling_a_rider_route(driver):
    d = await driver()
    place = spot()
    is_problem(
        await d.post("/v1/trips", {"pickup": place, "dropoff": place, "product": "standard"}), 403
    )


async def test_404_no_such_object_or_someone_elses(rider):
    r = await rider()
    is_problem(await r.get("/v1/trips/trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8"), 404)
    other = await rider()
    trip = await request_trip(other, spot())
    is_problem(await r.get(f"/v1/trips/{trip['id']}"), 404)
    await other.post(f"/v1/trips/{trip['id']}/cancel")


async def test_409_state_conflicts(rider, driver, new_client):
    # A second active trip.
    r = await rider()
    place = spot()
    trip = await request_trip(r, place)
    is_problem(
        await r.post("/v1/trips", {"pickup": place, "dropoff": near(place), "product": "xl"}), 409
    )
    # Cancel a cancelled trip.
    assert (await r.post(f"/v1/trips/{trip['id']}/cancel")).status == 200
    is_problem(await r.post(f"/v1/trips/{trip['id']}/cancel"), 409)
    # A user name taken.
    c = new_client()
    name = unique("taken")
    assert (await c.post("/v1/riders", rider_body(name))).status == 201
    is_problem(await c.post("/v1/riders", rider_body(name)), 409)
    is_problem(await c.post("/v1/drivers", driver_body(name)), 409)
    # Going offline during an active trip.
    owner, d, assigned = await assigned_trip(rider, driver)
    is_problem(await d.post("/v1/driver/status", {"status": "offline"}), 409)
    # A transition out of order.
    is_problem(await d.post(f"/v1/trips/{assigned['id']}/complete"), 409)
    await owner.post(f"/v1/trips/{assigned['id']}/cancel")


async def test_413_body_larger_than_64_kib(rider):
    r = await rider()
    big = b'{"reason": "' + b"x" * (70 * 1024) + b'"}'
    is_problem(
        await r.call(
            "POST", "/v1/trips/trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8/cancel",
            data=big, headers={"Content-Type": "application/json"},
        ),
        413,
    )


async def test_415_a_body_that_is_not_json(rider):
    r = await rider()
    is_problem(
        await r.call("POST", "/v1/estimates", data=b"a=b",
                     headers={"Content-Type": "application/x-www-form-urlencoded"}),
        415,
    )


async def test_422_validation_lists_every_field(rider, new_client):
    r = await rider()
    body = is_problem(
        await r.post("/v1/trips", {"pickup": {"lat": 91, "lon": "x"}, "product": "boat"}), 422
    )
    fields = {e["field"] for e in body["errors"]}
    assert {"pickup.lat", "pickup.lon", "dropoff", "product"} <= fields
    body = is_problem(await r.get("/v1/trips", params={"limit": "101"}), 422)
    assert body["errors"][0]["field"] == "limit"
    far = {"lat": 40.7, "lon": -74.0}
    is_problem(await r.post("/v1/trips", {"pickup": far, "dropoff": far, "product": "xl"}), 422)
    c = new_client()
    body = is_problem(
        await c.post("/v1/drivers", driver_body(unique("bad"), product="rocket", region="mars")),
        422,
    )
    assert {"product", "region"} <= {e["field"] for e in body["errors"]}


async def test_optional_bodies_accept_an_empty_body_without_content_type(rider):
    r = await rider()
    trip = await request_trip(r, spot())
    resp = await r.call("POST", f"/v1/trips/{trip['id']}/cancel", data=b"")
    assert resp.status == 200 and resp.body["status"] == "cancelled"
