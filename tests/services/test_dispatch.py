"""Dispatch: rank order, timeouts, expiry, availability, surge and searches."""

from __future__ import annotations

import asyncio

import orjson

from common import keys
from common.streams import Entry
from driver_service import dispatcher
from driver_service.app import DISPATCHER, SWEEPER, Workers

from tests.helpers.services import near
from tests.waiting import eventually


async def _positions(rig, trip_ids):
    return [(await rig.trip(t)).get("queue_position") for t in trip_ids]


async def test_rank_order_oldest_first_and_decline_keeps_place(rig):
    trips = [await rig.request(near(0.001 * i)) for i in range(3)]
    ids_ = [t["id"] for t in trips]
    assert await _positions(rig, ids_) == [1, 2, 3]
    # A new driver nearest to the newest trip still gets the oldest first.
    d1 = await rig.new_driver(near(0.002))
    offer = await rig.offered(d1)
    assert offer["trip_id"] == ids_[0]
    # An offered trip keeps its place.
    assert await _positions(rig, ids_) == [1, 2, 3]
    assert (await rig.decline(d1, ids_[0])).status == 204
    # Declined: same place, and d1 moves on to the next oldest.
    assert await _positions(rig, ids_) == [1, 2, 3]
    offer = await rig.offered(d1)
    assert offer["trip_id"] == ids_[1]
    # A second driver gets the oldest, which d1 refused.
    d2 = await rig.new_driver(near(0.003))
    offer = await rig.offered(d2)
    assert offer["trip_id"] == ids_[0]
    assert (await rig.accept(d2, ids_[0])).status == 200
    assert await _positions(rig, ids_[1:]) == [1, 2]
    assert d1 in (await rig.doc(ids_[0]))["refused"]


async def test_nearest_available_driver_is_offered(rig):
    far = await rig.new_driver(near(0.02))
    close = await rig.new_driver(near(0.002))
    trip = await rig.request(near())
    offer = await rig.offered(close)
    assert offer["trip_id"] == trip["id"]
    assert await rig.next_offer(far, wait=0) is None


async def test_declined_trip_is_never_offered_again_and_expires(make_rig):
    rig = await make_rig(trip_expiry_s=1.0)
    d1 = await rig.new_driver(near())
    trip = await rig.request(near())
    await rig.offered(d1)
    assert (await rig.decline(d1, trip["id"])).status == 204
    assert await rig.next_offer(d1, wait=0.3) is None

    async def expired():
        return (await rig.doc(trip["id"]))["status"] == "expired"

    await eventually(expired, timeout=5, message="timed out waiting for expiry")
    types = await rig.types_of(trip["id"])
    assert types == ["trip.requested", "trip.offered", "trip.offer_declined", "trip.expired"]


async def test_offer_timeout_moves_to_the_next_driver(make_rig):
    rig = await make_rig(offer_timeout_s=1.0)
    d1 = await rig.new_driver(near(0.001))
    d2 = await rig.new_driver(near(0.01))
    trip = await rig.request(near())
    first = await rig.offered(d1)
    assert first["trip_id"] == trip["id"]
    second = await rig.offered(d2)
    assert second["trip_id"] == trip["id"]
    doc = await rig.doc(trip["id"])
    assert doc["refused"] == [d1] and doc["offer"]["driver_id"] == d2
    # d1 is available again, yet never offered this trip again.
    assert (await rig.driver(d1))["available"] is True
    r = await rig.accept(d1, trip["id"])
    assert r.status == 409
    types = await rig.types_of(trip["id"])
    assert types[:4] == ["trip.requested", "trip.offered", "trip.offer_expired", "trip.offered"]


async def test_accept_at_expiry_is_409_without_a_sweeper(make_rig):
    rig = await make_rig(Workers(sweeper=False), offer_timeout_s=1.0)
    d1 = await rig.new_driver(near())
    trip = await rig.request(near())
    offer = await rig.offered(d1)
    expires_ms = (await rig.doc(trip["id"]))["offer"]["expires_ms"]

    async def past_deadline():
        seconds, micros = await rig.redis.time()
        return seconds * 1000 + micros // 1000 >= expires_ms

    await eventually(past_deadline, timeout=5, message="timed out waiting for the offer deadline")
    before = await rig.doc(trip["id"])
    r = await rig.accept(d1, trip["id"])
    assert r.status == 409
    assert "expired" in (await r.json())["detail"]
    assert await rig.doc(trip["id"]) == before
    assert before["offer"]["driver_id"] == d1  # nobody swept it
    assert offer["expires_at"] == before["offer"]["expires_at"]
    # The sweeper, when it runs, expires the offer once.
    sweeper_rig = await make_rig()
    await sweeper_rig.driver_app[SWEEPER].sweep_once()
    assert (await rig.doc(trip["id"]))["refused"] == [d1]
    assert (await rig.types_of(trip["id"])).count("trip.offer_expired") == 1


async def test_going_offline_declines_the_open_offer(rig):
    d1 = await rig.new_driver(near())
    trip = await rig.request(near())
    await rig.offered(d1)
    driver = await rig.status(d1, "offline")
    assert driver["status"] == "offline" and driver["available"] is False
    doc = await rig.doc(trip["id"])
    assert doc.get("offer") is None and doc["refused"] == [d1]
    assert await rig.redis.zscore(keys.geo("sf", "standard"), d1) is None
    assert await rig.redis.hgetall(keys.supply("sf", "standard")) == {}
    assert (await rig.types_of(trip["id"]))[-1] == "trip.offer_declined"
    # Back online: available, but this trip is not offered again.
    await rig.status(d1, "online")
    assert await rig.next_offer(d1, wait=0.3) is None


async def test_going_offline_on_a_trip_is_409(rig):
    trip_id, _, driver_id = await rig.assigned_trip()
    before = await rig.driver_doc(driver_id)
    await rig.status(driver_id, "offline", expect=409)
    assert await rig.driver_doc(driver_id) == before


async def test_online_twice_is_idempotent(rig):
    d1 = await rig.new_driver(near())
    n = await rig.redis.xlen(keys.events("sf"))
    await rig.status(d1, "online")
    assert await rig.redis.xlen(keys.events("sf")) == n
    assert await rig.redis.hgetall(keys.online_driver_counts("sf")) == {"standard": "1"}
    assert await rig.redis.hgetall(keys.supply("sf", "standard")) == {"9q8yy": "1"}


async def test_first_location_fix_makes_a_driver_available_and_dispatches(rig):
    trip = await rig.request(near())
    d1 = await rig.new_driver(None)  # online without a location: not available
    assert (await rig.driver(d1))["available"] is False
    await rig.locate(d1, near(0.001))
    offer = await rig.offered(d1)
    assert offer["trip_id"] == trip["id"]


async def test_the_location_route_only_writes_and_the_dispatcher_serves_the_event(make_rig):
    """No dispatch on the request's path: the fix that makes a driver
    available publishes `driver.available` (with the fix), and the trip is
    offered when the dispatcher handles that event."""
    rig = await make_rig(Workers(dispatch=False))
    trip = await rig.request(near())
    d1 = await rig.new_driver(None)
    await rig.locate(d1, near(0.001))
    assert (await rig.doc(trip["id"])).get("offer") is None  # nothing dispatched inline
    await rig.locate(d1, near(0.0012))  # available already: no second event
    rows = [(sid, f) for sid, f in await rig.redis.xrange(keys.events("sf"))
            if f["type"] == "driver.available"]
    assert len(rows) == 1
    sid, fields = rows[0]
    env = orjson.loads(fields["env"])
    assert env["driver_id"] == d1
    assert env["data"] == {"product": "standard", "location": near(0.001)}
    await rig.driver_app[DISPATCHER].handle(Entry(keys.events("sf"), sid, fields))
    offer = await rig.offered(d1, timeout=0)
    assert offer["trip_id"] == trip["id"]


async def test_a_driver_moving_into_range_is_found_by_the_rematch(make_rig):
    rig = await make_rig()
    rig.driver_app[SWEEPER].rematch_interval_s = 0.1
    trip = await rig.request(near())
    d1 = await rig.new_driver(near(-0.065))  # ~7 km: out of DISPATCH_RADIUS_M
    assert await rig.next_offer(d1, wait=0.2) is None
    await rig.locate(d1, near(0.002))
    offer = await rig.offered(d1)
    assert offer["trip_id"] == trip["id"]


async def test_the_rematch_looks_past_trips_with_an_offer_out(make_rig, monkeypatch):
    # The head of the queue holds offered trips (REMATCH_BATCH of them and
    # one more): the trip waiting behind them is still tried again.
    monkeypatch.setattr(dispatcher, "REMATCH_BATCH", 2)
    rig = await make_rig(offer_timeout_s=60, dispatch_radius_m=1000)
    rig.driver_app[SWEEPER].rematch_interval_s = 0.1
    for i in range(3):
        holder = await rig.new_driver(near(0.001 * i))
        offered = await rig.request(near(0.001 * i))
        assert (await rig.offered(holder))["trip_id"] == offered["id"]
    trip = await rig.request(near(0.03))  # ~3 km north: nobody within 1 km
    d1 = await rig.new_driver(near(-0.02))  # ~5.5 km south of it
    assert await rig.next_offer(d1, wait=0.3) is None
    await rig.locate(d1, near(0.031))
    offer = await rig.offered(d1)
    assert offer["trip_id"] == trip["id"]


async def test_location_moves_supply_between_cells(rig):
    d1 = await rig.new_driver(near())
    supply = keys.supply("sf", "standard")
    assert await rig.redis.hgetall(supply) == {"9q8yy": "1"}
    await rig.locate(d1, {"lat": 37.81, "lon": -122.50})
    cells = await rig.redis.hgetall(supply)
    assert list(cells.values()) == ["1"] and "9q8yy" not in cells
    pos = await rig.redis.geopos(keys.geo("sf", "standard"), d1)
    assert abs(pos[0][1] - 37.81) < 1e-4
    r = await rig.drivers.put(f"/internal/drivers/{d1}/location", json={"lat": 40.0, "lon": -122.4})
    assert r.status == 422
    assert (await r.json())["errors"][0]["field"] == "lat"


async def test_surge_rises_with_demand_and_falls_with_supply(rig):
    body = {"region": "sf", "pickup": near(), "dropoff": {"lat": 37.80, "lon": -122.41}}

    async def surge():
        r = await rig.trips.post("/internal/estimates", json=body)
        assert r.status == 200
        est = {e["product"]: e for e in (await r.json())["estimates"]}
        assert set(est) == {"standard", "xl", "premium"}
        return est["standard"]["surge"], est["standard"]["fare"]

    base, base_fare = await surge()
    assert base == 1.0
    for i in range(4):
        await rig.request(near(0.001 * i))
    high, high_fare = await surge()
    assert high > 1.0 and float(high_fare["amount"]) > float(base_fare["amount"])
    # The surge is frozen into trips requested now.
    trip = await rig.request(near())
    assert trip["surge"] == high
    for _ in range(3):
        await rig.new_driver(near(-0.01), product="xl")
    xl = {e["product"]: e for e in (await (await rig.trips.post(
        "/internal/estimates", json=body)).json())["estimates"]}["xl"]
    assert xl["surge"] == 1.0
    assert await rig.redis.hget(keys.demand("sf", "standard"), "9q8yy") == "5"


async def test_nearby_and_etas(rig):
    d1 = await rig.new_driver(near(0.003))
    await rig.new_driver(near(0.01), product="xl")
    await rig.new_driver(near(0.004), online=False)
    r = await rig.drivers.get("/internal/nearby", params={
        "region": "sf", "lat": str(near()["lat"]), "lon": str(near()["lon"]), "radius_m": "3000"})
    assert r.status == 200
    body = await r.json()
    assert body["count"] == 2
    assert [d["product"] for d in body["drivers"]] == ["standard", "xl"]
    assert "id" not in body["drivers"][0] and body["drivers"][0]["pickup_eta_s"] > 0
    r = await rig.drivers.get("/internal/nearby", params={
        "region": "sf", "lat": "37.7", "lon": "-122.4", "product": "premium"})
    assert (await r.json())["count"] == 0
    r = await rig.drivers.get("/internal/nearby", params={"region": "sf", "lat": "10", "lon": "0"})
    assert r.status == 422
    r = await rig.drivers.post("/internal/etas", json={"region": "sf", "pickup": near()})
    etas = (await r.json())["etas"]
    assert etas["standard"] is not None and etas["xl"] is not None and etas["premium"] is None
    assert etas["standard"] < etas["xl"]
    # An offered driver is not available: not nearby.
    await rig.request(near())
    await rig.offered(d1)
    r = await rig.drivers.post("/internal/etas", json={"region": "sf", "pickup": near()})
    assert (await r.json())["etas"]["standard"] is None


async def test_long_poll_wakes_on_an_offer(rig):
    d1 = await rig.new_driver(near())
    poll = asyncio.ensure_future(rig.next_offer(d1, wait=5))
    trip = await rig.request(near())
    offer = await asyncio.wait_for(poll, 5)
    assert offer["trip_id"] == trip["id"]
    assert set(offer) == {"trip_id", "pickup", "dropoff", "product", "fare_estimate",
                          "distance_to_pickup_m", "expires_at"}
    # The open offer is answered again until it is answered.
    assert (await rig.next_offer(d1, wait=0))["trip_id"] == trip["id"]
    assert (await rig.decline(d1, trip["id"])).status == 204
    assert await rig.next_offer(d1, wait=0) is None
