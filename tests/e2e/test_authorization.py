"""Authorization on every route: 401 without a valid token, 403 for the wrong
role, and another user's object is 404 on every route that takes an id."""

from __future__ import annotations

import pytest

from tests.client import read_sse
from tests.helpers.e2e import assigned_trip, near, next_offer, request_trip, spot

TRIP_PLACEHOLDER = "trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8"

# Every route of API.md that needs a session: (method, path, role that may call it).
ROUTES = [
    ("DELETE", "/v1/sessions/current", "any"),
    ("GET", "/v1/me", "any"),
    ("POST", "/v1/estimates", "rider"),
    ("POST", "/v1/trips", "rider"),
    ("GET", "/v1/trips/{id}", "any"),
    ("GET", "/v1/trips", "rider/driver"),
    ("POST", "/v1/trips/{id}/cancel", "rider/driver"),
    ("POST", "/v1/trips/{id}/rating", "rider"),
    ("GET", "/v1/trips/{id}/events", "any"),
    ("GET", "/v1/trips/{id}/timeline", "any"),
    ("GET", "/v1/drivers/nearby", "any"),
    ("POST", "/v1/driver/status", "driver"),
    ("PUT", "/v1/driver/location", "driver"),
    ("GET", "/v1/driver/offers/next", "driver"),
    ("POST", "/v1/driver/offers/{id}/accept", "driver"),
    ("POST", "/v1/driver/offers/{id}/decline", "driver"),
    ("POST", "/v1/trips/{id}/arrive", "driver"),
    ("POST", "/v1/trips/{id}/start", "driver"),
    ("POST", "/v1/trips/{id}/complete", "driver"),
    ("GET", "/v1/driver/trip", "driver"),
    ("GET", "/v1/ops/overview", "ops"),
    ("GET", "/v1/ops/events", "ops"),
]


@pytest.mark.parametrize("method,path,role", ROUTES)
async def test_no_token_or_a_bad_token_is_401(new_client, method, path, role):
    c = new_client()
    url = path.replace("{id}", TRIP_PLACEHOLDER)
    for token in ("", "Zm9vYmFyYmF6cXV4cXV1eHF1dXhxdXV4"):
        r = await c.call(method, url, token=token)
        assert r.status == 401, (url, r)
        assert r.headers["Content-Type"].startswith("application/problem+json")


async def test_each_role_gets_403_on_the_routes_of_other_roles(rider, driver, ops):
    callers = {"rider": await rider(), "driver": await driver(), "ops": ops}
    for method, path, allowed in ROUTES:
        url = path.replace("{id}", TRIP_PLACEHOLDER)
        for role, caller in callers.items():
            if allowed == "any" or role in allowed.split("/"):
                continue
            r = await caller.call(method, url, json={})
            assert r.status == 403, (role, method, url, r)


async def test_another_riders_trip_is_404_on_every_trip_route(rider, driver, http, system):
    owner, d, trip = await assigned_trip(rider, driver)
    trip_id = trip["id"]
    stranger = await rider()
    for method, path, body in (
        ("GET", f"/v1/trips/{trip_id}", None),
        ("POST", f"/v1/trips/{trip_id}/cancel", None),
        ("POST", f"/v1/trips/{trip_id}/rating", {"stars": 1}),
        ("GET", f"/v1/trips/{trip_id}/timeline", None),
    ):
        r = await stranger.call(method, path, body)
        assert r.status == 404, (path, r)
    status, _, _ = await read_sse(http, f"{system.url}/v1/trips/{trip_id}/events", stranger.token)
    assert status == 404
    # The owner still can.
    assert (await owner.get(f"/v1/trips/{trip_id}")).status == 200
    await d.post(f"/v1/trips/{trip_id}/cancel")
    await owner.post(f"/v1/trips/{trip_id}/cancel")


async def test_another_drivers_trip_is_404_and_their_offer_409(rider, driver, http, system):
    owner, assigned, trip = await assigned_trip(rider, driver)
    trip_id = trip["id"]
    other = await driver()
    for method, path in (
        ("GET", f"/v1/trips/{trip_id}"),
        ("GET", f"/v1/trips/{trip_id}/timeline"),
        ("POST", f"/v1/trips/{trip_id}/arrive"),
        ("POST", f"/v1/trips/{trip_id}/start"),
        ("POST", f"/v1/trips/{trip_id}/complete"),
        ("POST", f"/v1/trips/{trip_id}/cancel"),
    ):
        r = await other.call(method, path)
        assert r.status == 404, (path, r)
    status, _, _ = await read_sse(http, f"{system.url}/v1/trips/{trip_id}/events", other.token)
    assert status == 404
    # A trip never offered to this driver: as if it did not exist.
    accept = await other.post(f"/v1/driver/offers/{trip_id}/accept")
    assert accept.status == 404, accept
    decline = await other.post(f"/v1/driver/offers/{trip_id}/decline")
    assert decline.status == 404, decline
    # Nothing changed for the real pair.
    got = await owner.get(f"/v1/trips/{trip_id}")
    assert got.body["status"] == "assigned" and got.body["driver"]["id"] == assigned.subject_id
    await owner.post(f"/v1/trips/{trip_id}/cancel")


async def test_a_driver_sees_only_the_trips_they_were_assigned(rider, driver):
    place = spot()
    d = await driver(at=near(place, 0.0005))
    r = await rider()
    trip = await request_trip(r, place)
    offer = await next_offer(d, trip["id"])
    # Offered is not assigned: the trip is not yet the driver's.
    assert (await d.get(f"/v1/trips/{offer['trip_id']}")).status == 404
    await d.post(f"/v1/driver/offers/{trip['id']}/accept")
    assert (await d.get(f"/v1/trips/{trip['id']}")).status == 200
    await r.post(f"/v1/trips/{trip['id']}/cancel")


async def test_unknown_ids_are_404(rider, driver):
    r = await rider()
    d = await driver()
    for c, method, path in (
        (r, "GET", f"/v1/trips/{TRIP_PLACEHOLDER}"),
        (r, "POST", f"/v1/trips/{TRIP_PLACEHOLDER}/cancel"),
        (r, "POST", f"/v1/trips/{TRIP_PLACEHOLDER}/rating"),
        (r, "GET", f"/v1/trips/{TRIP_PLACEHOLDER}/timeline"),
        (r, "GET", f"/v1/trips/{TRIP_PLACEHOLDER}/events"),
        (d, "POST", f"/v1/trips/{TRIP_PLACEHOLDER}/arrive"),
        (d, "POST", "/v1/driver/offers/not-a-trip/accept"),
        (r, "GET", "/v1/trips/trp_zz_01JDQ3V8M7X1Y2Z3A4B5C6D7E8"),
    ):
        body = {"stars": 5} if path.endswith("rating") else None
        resp = await c.call(method, path, body)
        assert resp.status == 404, (path, resp)
