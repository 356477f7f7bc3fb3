"""Driver routes: status, location, offers (long poll, decline, expiry),
giving a trip back, and the current trip."""

from __future__ import annotations

import time

from tests.helpers.e2e import near, next_offer, request_trip, spot
from tests.waiting import eventually


async def test_status_and_location(driver):
    place = spot()
    d = await driver()
    online = await d.post("/v1/driver/status", {"status": "online"})
    assert online.status == 200
    assert online.body["status"] == "online" and online.body["user_name"]
    assert online.body["car"]["make"] == "Toyota"
    put = await d.call("PUT", "/v1/driver/location", {"lat": place["lat"], "lon": place["lon"],
                                                      "heading": 90, "speed_mps": 8.5})
    assert put.status == 204
    far = await d.call("PUT", "/v1/driver/location", {"lat": 40.7, "lon": -74.0})
    assert far.status == 422 and {e["field"] for e in far.body["errors"]} == {"lat", "lon"}
    bad = await d.call("PUT", "/v1/driver/location", {"lat": "x", "lon": 500, "heading": 400})
    assert bad.status == 422
    assert {e["field"] for e in bad.body["errors"]} == {"lat", "lon", "heading"}
    me = await d.get("/v1/me")
    assert me.body["location"]["lat"] == place["lat"]
    offline = await d.post("/v1/driver/status", {"status": "offline"})
    assert offline.status == 200 and offline.body["status"] == "offline"
    assert (await d.post("/v1/driver/status", {"status": "asleep"})).status == 422


async def test_no_offer_is_204_and_wait_is_bounded(driver):
    d = await driver(at=spot())
    started = time.monotonic()
    r = await d.get("/v1/driver/offers/next", params={"wait": "0"})
    assert r.status == 204 and time.monotonic() - started < 2
    r = await d.get("/v1/driver/offers/next", params={"wait": "1"})
    assert r.status == 204
    assert (await d.get("/v1/driver/offers/next", params={"wait": "21"})).status == 422
    assert (await d.get("/v1/driver/offers/next", params={"wait": "-1"})).status == 422
    assert (await d.get("/v1/driver/trip")).status == 204


async def test_a_declined_trip_goes_to_the_next_driver_and_keeps_its_place(rider, driver):
    place = spot()
    first = await driver(at=near(place, 0.0002))
    second = await driver(at=near(place, 0.0015))
    r = await rider()
    trip = await request_trip(r, place)
    offer = await next_offer(first, trip["id"])
    assert offer["trip_id"] == trip["id"]
    declined = await first.post(f"/v1/driver/offers/{trip['id']}/decline")
    assert declined.status == 204
    await next_offer(second, trip["id"])
    got = await r.get(f"/v1/trips/{trip['id']}")
    assert got.body["status"] == "requested" and got.body["queue_position"] >= 1
    accepted = await second.post(f"/v1/driver/offers/{trip['id']}/accept")
    assert accepted.status == 200
    # The decliner can no longer take it.
    assert (await first.post(f"/v1/driver/offers/{trip['id']}/accept")).status == 409
    await r.post(f"/v1/trips/{trip['id']}/cancel")


async def test_an_expired_offer_cannot_be_accepted(rider, driver):
    place = spot()
    d = await driver(at=near(place, 0.0003))
    r = await rider()
    trip = await request_trip(r, place)
    offer = await next_offer(d, trip["id"])

    async def expired():
        got = await r.get(f"/v1/trips/{trip['id']}")
        return got.body["status"] == "requested" and time.time() > _epoch(offer["expires_at"])

    await eventually(expired, timeout=15, interval=0.1)
    late = await d.post(f"/v1/driver/offers/{trip['id']}/accept")
    assert late.status == 409
    await r.post(f"/v1/trips/{trip['id']}/cancel")


async def test_a_driver_gives_a_trip_back_and_it_is_offered_to_others(rider, driver, http, system):
    place = spot()
    quitter = await driver(at=near(place, 0.0002))
    r = await rider()
    trip = await request_trip(r, place)
    await next_offer(quitter, trip["id"])
    assert (await quitter.post(f"/v1/driver/offers/{trip['id']}/accept")).status == 200
    back = await quitter.post(f"/v1/trips/{trip['id']}/cancel", {"reason": "flat tyre"})
    assert back.status == 200, back
    assert back.body["status"] == "requested"
    # It is no longer the quitter's trip.
    assert (await quitter.get(f"/v1/trips/{trip['id']}")).status == 404
    got = await r.get(f"/v1/trips/{trip['id']}")
    assert got.body["status"] == "requested" and "driver" not in got.body
    assert got.body["queue_position"] >= 1
    replacement = await driver(at=near(place, 0.001))
    await next_offer(replacement, trip["id"])
    assert (await replacement.post(f"/v1/driver/offers/{trip['id']}/accept")).status == 200
    timeline = await r.get(f"/v1/trips/{trip['id']}/timeline")
    assert "trip.driver_cancelled" in [e["type"] for e in timeline.body["events"]]
    await r.post(f"/v1/trips/{trip['id']}/cancel")


async def test_going_offline_with_an_open_offer_declines_it(rider, driver, ops):
    place = spot()
    d = await driver(at=near(place, 0.0002))
    r = await rider()
    trip = await request_trip(r, place)
    await next_offer(d, trip["id"])
    off = await d.post("/v1/driver/status", {"status": "offline"})
    assert off.status == 200 and off.body["status"] == "offline"
    # Declines are dispatch's business: ops sees them, the rider does not.
    timeline = await ops.get(f"/v1/trips/{trip['id']}/timeline")
    assert "trip.offer_declined" in [e["type"] for e in timeline.body["events"]]
    theirs = await r.get(f"/v1/trips/{trip['id']}/timeline")
    assert [e["type"] for e in theirs.body["events"]] == ["trip.requested"]
    await r.post(f"/v1/trips/{trip['id']}/cancel")


async def test_a_rider_cancelling_frees_the_driver(rider, driver):
    place = spot()
    d = await driver(at=near(place, 0.0002))
    r = await rider()
    trip = await request_trip(r, place)
    await next_offer(d, trip["id"])
    await d.post(f"/v1/driver/offers/{trip['id']}/accept")
    cancelled = await r.post(f"/v1/trips/{trip['id']}/cancel")
    assert cancelled.body["status"] == "cancelled" and cancelled.body["cancelled_by"] == "rider"

    async def free():
        me = await d.get("/v1/me")
        return me.body.get("available") and (await d.get("/v1/driver/trip")).status == 204

    await eventually(free, timeout=10, interval=0.1)


def _epoch(value: str) -> float:
    from common.timeutil import parse_iso

    return parse_iso(value) / 1000
