"""The internal HTTP APIs: validation, reads, ops views, edges."""

from __future__ import annotations

import asyncio
import orjson

from common import ids, keys
from common.regions import Region
from common.streams import Entry
from driver_service.app import MAINTENANCE, STORE, TASKS, Workers
from driver_service.ratings import RatingConsumer

from tests.helpers.services import DROPOFF, near
from tests.waiting import eventually

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


async def test_validation_errors_list_every_field(rig):
    r = await rig.trips.post("/internal/trips", json={
        "rider_id": "nope", "pickup": {"lat": 91, "lon": 0}, "dropoff": {}, "product": "bus"})
    assert r.status == 422
    fields = {e["field"] for e in (await r.json())["errors"]}
    assert {"rider_id", "pickup.lat", "dropoff.lat", "dropoff.lon", "product"} <= fields
    r = await rig.trips.post("/internal/trips", data=b"{not json",
                             headers={"Content-Type": "application/json"})
    assert r.status == 400
    r = await rig.trips.post("/internal/trips", data=b"x", headers={"Content-Type": "text/plain"})
    assert r.status == 415
    r = await rig.trips.get("/internal/riders/rdr_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8/trips",
                            params={"limit": "abc"})
    assert r.status == 400
    r = await rig.trips.get("/internal/riders/rdr_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8/trips",
                            params={"limit": "101"})
    assert r.status == 422
    r = await rig.drivers.get("/internal/drivers/drv_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8/offers/next",
                              params={"wait": "30"})
    assert r.status == 422
    r = await rig.trips.post(f"/internal/trips/{ids.new_id('trp', 'sf')}/rating",
                             json={"rider_id": ids.new_id("rdr", "sf"), "stars": 6})
    assert r.status == 422


async def test_unknown_objects_are_404(rig):
    for path in ("/internal/trips/trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8", "/internal/trips/garbage",
                 "/internal/trips/trp_zz_01JDQ3V8M7X1Y2Z3A4B5C6D7E8/timeline"):
        assert (await rig.trips.get(path)).status == 404
    for path in ("/internal/drivers/drv_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8", "/internal/drivers/x",
                 "/internal/trips/trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8/driver"):
        assert (await rig.drivers.get(path)).status == 404
    d = await rig.new_driver(near())
    assert (await rig.accept(d, "trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8")).status == 404
    trip = await rig.request(near())
    other_rider = ids.new_id("rdr", "sf")
    assert (await rig.cancel(trip["id"], other_rider)).status == 404
    stranger = await rig.new_driver(None, online=False)
    r = await rig.act(stranger, trip["id"], "arrive")
    assert r.status == 404


async def test_pickup_outside_the_riders_region_is_422(make_rig):
    oak = Region("oak", 37.70, -122.35, 37.85, -122.10)
    sf = Region("sf", 37.70, -122.52, 37.83, -122.35)
    rig = await make_rig(regions=(sf, oak))
    oak_rider = ids.new_id("rdr", "oak")
    r = await rig.trips.post("/internal/trips", json={
        "rider_id": oak_rider, "pickup": near(), "dropoff": DROPOFF, "product": "standard"})
    assert r.status == 422
    assert (await r.json())["errors"][0]["field"] == "pickup.lon"
    pickup = {"lat": 37.80, "lon": -122.27}
    trip = await rig.request(pickup, rider_id=oak_rider)
    assert trip["id"].startswith("trp_oak_")
    assert await rig.redis.zcard(keys.pending("oak", "standard")) == 1
    assert await rig.redis.zcard(keys.pending("sf", "standard")) == 0
    # Each region has its own dispatcher on its own stream.
    driver_id = ids.new_id("drv", "oak")
    r = await rig.drivers.post("/internal/drivers", json={
        "driver_id": driver_id, "first_name": "O", "last_name": "K", "product": "standard",
        "car": {"make": "Kia", "model": "Niro", "color": "red", "plate": "OAK1", "seats": 4}})
    assert r.status == 201
    await rig.locate(driver_id, {"lat": 37.801, "lon": -122.27})
    await rig.status(driver_id, "online")
    assert (await rig.offered(driver_id))["trip_id"] == trip["id"]


async def test_idempotent_creation(rig):
    trip_id = ids.new_id("trp", "sf")
    rider = ids.new_id("rdr", "sf")
    body = {"trip_id": trip_id, "rider_id": rider, "pickup": near(), "dropoff": DROPOFF,
            "product": "standard"}
    first = await rig.trips.post("/internal/trips", json=body)
    again = await rig.trips.post("/internal/trips", json=body)
    assert first.status == again.status == 201
    assert (await first.json())["id"] == (await again.json())["id"] == trip_id
    assert await rig.types_of(trip_id) == ["trip.requested"]
    other = await rig.trips.post("/internal/trips", json={**body, "product": "xl"})
    assert other.status == 409
    d = ids.new_id("drv", "sf")
    reg = {"driver_id": d, "first_name": "A", "last_name": "B", "product": "xl",
           "car": {"make": "M", "model": "N", "color": "c", "plate": "P", "seats": 6}}
    assert (await rig.drivers.post("/internal/drivers", json=reg)).status == 201
    assert (await rig.drivers.post("/internal/drivers", json=reg)).status == 200
    assert (await rig.drivers.post("/internal/drivers", json={**reg, "product": "premium"})).status == 409


async def test_rider_history_pages_newest_first(rig):
    rider = ids.new_id("rdr", "sf")
    made = []
    for _ in range(5):
        trip = await rig.request(near(), rider_id=rider)
        made.append(trip["id"])
        assert (await rig.cancel(trip["id"], rider)).status == 200
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (await rig.trips.get(f"/internal/riders/{rider}/trips", params=params)).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == made[::-1]
    r = await rig.trips.get(f"/internal/riders/{rider}/trips", params={"cursor": "!!"})
    assert r.status == 422


async def test_driver_history_and_assigned_driver(rig):
    trip_id, rider_id, driver_id = await rig.assigned_trip()
    info = await (await rig.drivers.get(f"/internal/trips/{trip_id}/driver")).json()
    assert info["id"] == driver_id and info["pickup_eta_s"] is not None
    assert set(info) == {"id", "first_name", "rating", "car", "location", "pickup_eta_s"}
    page = await (await rig.drivers.get(f"/internal/drivers/{driver_id}/trips")).json()
    assert [t["id"] for t in page["items"]] == [trip_id]
    trip = await rig.trip(trip_id)
    assert trip["driver_id"] == driver_id


async def test_trace_id_reaches_every_event_it_causes(rig):
    driver_id = await rig.new_driver(near())
    await rig.settled()  # else driver.online, handled late, may make the offer
    r = await rig.trips.post("/internal/trips", headers={"traceparent": TRACEPARENT}, json={
        "rider_id": ids.new_id("rdr", "sf"), "pickup": near(), "dropoff": DROPOFF,
        "product": "standard"})
    trip = await r.json()
    await rig.offered(driver_id)
    r = await rig.drivers.post(f"/internal/drivers/{driver_id}/offers/{trip['id']}/accept",
                               headers={"traceparent": TRACEPARENT.replace("4736", "9999")})
    events = [e for e in await rig.events() if e.get("trip_id") == trip["id"]]
    assert [(e["type"], e["trace_id"]) for e in events] == [
        ("trip.requested", TRACE),
        ("trip.offered", TRACE),  # the dispatcher carries the cause's trace
        ("trip.assigned", TRACE[:-4] + "9999"),
    ]
    env = events[1]
    assert env["producer"] == "driver_service" and env["driver_id"] == driver_id
    assert env["version"] == 1 and env["occurred_at"].endswith("Z") and len(env["id"]) == 26


async def test_timeline_has_deliveries(rig):
    trip_id, rider_id, driver_id = await rig.assigned_trip()

    async def acked():
        body = await (await rig.trips.get(f"/internal/trips/{trip_id}/timeline")).json()
        groups = [{d["group"] for d in e["deliveries"] if d["acked_at"]} for e in body["events"]]
        return body if all({"dispatch", "driver-stats"} <= g for g in groups) else None

    body = await eventually(acked, timeout=5,
                            message="timed out waiting for deliveries acknowledged")
    assert [e["type"] for e in body["events"]] == ["trip.requested", "trip.offered",
                                                   "trip.assigned"]
    first = body["events"][0]
    assert {"id", "stream_id", "type", "occurred_at", "producer", "trace_id",
            "deliveries"} <= set(first)
    d = first["deliveries"][0]
    assert d["attempts"] == 1 and d["delivered_at"].endswith("Z")


async def test_ops_overviews(rig):
    trips = [await rig.request(near(0.001 * i)) for i in range(3)]
    d1 = await rig.new_driver(near())
    await rig.offered(d1)
    await rig.new_driver(near(), product="xl", online=False)
    body = await (await rig.trips.get("/internal/ops/overview")).json()
    assert body["trips_by_status"] == {"requested": 3}
    assert [p["trip_id"] for p in body["pending"]] == [t["id"] for t in trips]
    assert body["pending"][0]["offered_to"] == d1 and body["pending"][0]["queue_position"] == 1
    assert body["pending"][2]["waiting_s"] >= 0
    drv = await (await rig.drivers.get("/internal/ops/overview")).json()
    assert drv["drivers"]["standard"] == {"online": 1, "available": 0}
    assert drv["drivers"]["xl"] == {"online": 0, "available": 0}
    assert drv["open_offers"] == 1 and drv["dead_letters"] == 0
    assert {g["group"] for g in drv["consumer_groups"]} == {"dispatch", "driver-stats"}
    assert drv["streams"][0]["entries_added"] >= 6


async def test_readiness_checks_redis_and_workers(rig):
    for client in (rig.trips, rig.drivers):
        r = await client.get("/readyz")
        assert r.status == 200, await r.text()
    body = await (await rig.drivers.get("/readyz")).json()
    assert set(body["checks"]) == {"redis", "workers", "functions"}
    task = rig.driver_app[TASKS]["dispatch"][0]
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    r = await rig.drivers.get("/readyz")
    assert r.status == 503
    assert "dispatch" in (await r.json())["checks"]["workers"]


async def test_metrics_count_events_and_lag(rig):
    await rig.assigned_trip()
    await rig.driver_app[MAINTENANCE].update_gauges()
    text = await (await rig.drivers.get("/metrics")).text()
    assert 'events_published_total{type="trip.assigned"}' in text
    assert 'consumer_group_lag{group="dispatch"' in text
    assert "consumer_group_pending" in text


async def test_trimming_keeps_what_groups_still_need(make_rig):
    rig = await make_rig(Workers(dispatch=False, driver_stats=False, sweeper=False))
    stream = keys.events("sf")
    await rig.redis.xgroup_create(stream, "dispatch", id="0", mkstream=True)
    for _ in range(4):
        await rig.request(near())
    assert await rig.redis.xlen(stream) == 4
    # Nothing read yet: nothing may go, however old.
    assert await rig.driver_app[MAINTENANCE].trim_once(retention_ms=0) == 0
    reply = await rig.redis.xreadgroup("dispatch", "c", {stream: ">"}, count=3)
    sids = [sid for sid, _ in reply[0][1]]
    await rig.redis.xack(stream, "dispatch", sids[0], sids[1])
    # Acked entries below the oldest pending one go; the pending one stays.
    assert await rig.driver_app[MAINTENANCE].trim_once(retention_ms=0) == 2
    first = (await rig.redis.xrange(stream, count=1))[0][0]
    assert first == sids[2]


async def test_rating_is_counted_once_per_event(rig):
    trip_id, rider_id, driver_id = await rig.assigned_trip()
    for action in ("arrive", "start", "complete"):
        await rig.act(driver_id, trip_id, action)
    await rig.trips.post(f"/internal/trips/{trip_id}/rating",
                         json={"rider_id": rider_id, "stars": 2})

    async def rated():
        return (await rig.driver(driver_id))["rating"] == 2.0

    await eventually(rated, timeout=5, message="timed out waiting for rating applied")
    rows = await rig.redis.xrange(keys.events("sf"))
    entry = next(Entry(keys.events("sf"), sid, f) for sid, f in rows if f["type"] == "trip.rated")
    consumer = RatingConsumer(rig.driver_app[STORE])
    await consumer.handle(entry)  # a redelivery
    await consumer.handle(entry)
    driver = await rig.driver(driver_id)
    assert driver["rating"] == 2.0 and driver["ratings"] == 1
    # Another rated trip averages.
    env = orjson.loads(entry.fields["env"])
    env["id"], env["data"]["stars"] = ids.new_ulid(), 5
    await consumer.handle(Entry(entry.stream, "0-1", {**entry.fields, "env": orjson.dumps(env).decode()}))
    assert (await rig.driver(driver_id))["rating"] == 3.5


async def test_empty_body_is_accepted_where_optional(rig):
    trip_id, rider_id, driver_id = await rig.assigned_trip()
    r = await rig.drivers.post(f"/internal/drivers/{driver_id}/trips/{trip_id}/arrive")
    assert r.status == 200, await r.text()
