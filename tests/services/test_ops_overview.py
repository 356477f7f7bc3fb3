"""The ops overviews of both services: where the online drivers are, the
active trips (from their index, kept by the trip scripts), the regions and
timers, and events per second from samples kept in Redis."""

from __future__ import annotations

from common import keys
from common.models import OPS_LIST_LIMIT
from driver_service.app import Workers

from tests.helpers.services import DROPOFF, near
from tests.waiting import eventually


async def driver_overview(rig, **params) -> dict:
    r = await rig.drivers.get("/internal/ops/overview", params=params)
    assert r.status == 200, await r.text()
    return await r.json()


async def trip_overview(rig, **params) -> dict:
    r = await rig.trips.get("/internal/ops/overview", params=params)
    assert r.status == 200, await r.text()
    return await r.json()


async def position_of(rig, driver_id: str) -> dict | None:
    body = await driver_overview(rig)
    found = [p for p in body["drivers"]["locations"] if p["driver_id"] == driver_id]
    assert len(found) <= 1
    return found[0] if found else None


async def active(rig) -> dict[str, dict]:
    return {t["trip_id"]: t for t in (await trip_overview(rig))["active_trips"]}


async def test_an_online_driver_appears_with_its_status_and_location(rig):
    at = near(0.002, -0.001)
    driver_id = await rig.new_driver(at)
    assert await position_of(rig, driver_id) == {
        "driver_id": driver_id,
        "region": "sf",
        "product": "standard",
        "status": "available",
        "location": {**at, "updated_at": (await rig.driver_doc(driver_id))["location"][
            "updated_at"]},
    }
    # Online without a location yet: counted, not placed.
    unplaced = await rig.new_driver(None)
    body = await driver_overview(rig)
    assert body["drivers"]["locations_total"] == 2
    assert [p["driver_id"] for p in body["drivers"]["locations"]] == [driver_id]
    await rig.status(unplaced, "offline")

    trip = await rig.request(at)
    await rig.offered(driver_id)
    offered = await position_of(rig, driver_id)
    assert offered["status"] == "offered" and offered["trip_id"] == trip["id"]
    assert (await rig.accept(driver_id, trip["id"])).status == 200
    moved = near(0.003, -0.001)
    await rig.locate(driver_id, moved)
    on_trip = await position_of(rig, driver_id)
    assert on_trip["status"] == "on_trip" and on_trip["trip_id"] == trip["id"]
    assert {k: on_trip["location"][k] for k in ("lat", "lon")} == moved
    for action in ("arrive", "start", "complete"):
        assert (await rig.act(driver_id, trip["id"], action)).status == 200
    free = await position_of(rig, driver_id)
    assert free["status"] == "available" and "trip_id" not in free

    await rig.status(driver_id, "offline")
    assert await position_of(rig, driver_id) is None
    body = await driver_overview(rig)
    assert body["drivers"]["locations_total"] == 0
    assert await rig.redis.zcard(keys.online_driver_ids("sf")) == 0


async def test_an_active_trip_appears_and_leaves_when_it_completes(rig):
    pickup = near(0.001)
    trip = await rig.request(pickup)
    listed = (await active(rig))[trip["id"]]
    assert listed == {
        "trip_id": trip["id"],
        "region": "sf",
        "status": "requested",
        "product": "standard",
        "pickup": pickup,
        "dropoff": DROPOFF,
        "requested_at": trip["requested_at"],
    }
    driver_id = await rig.new_driver(pickup)
    await rig.offered(driver_id)
    assert (await active(rig))[trip["id"]]["offered_to"] == driver_id
    assert (await rig.accept(driver_id, trip["id"])).status == 200
    for action, status in (("arrive", "arrived"), ("start", "in_progress")):
        listed = (await active(rig))[trip["id"]]
        assert listed["driver_id"] == driver_id and "offered_to" not in listed
        assert (await rig.act(driver_id, trip["id"], action)).status == 200
        assert (await active(rig))[trip["id"]]["status"] == status
    assert (await rig.act(driver_id, trip["id"], "complete")).status == 200
    body = await trip_overview(rig)
    assert trip["id"] not in {t["trip_id"] for t in body["active_trips"]}
    assert body["active_trips_total"] == 0


async def test_cancelled_and_expired_trips_leave_the_list(make_rig):
    rig = await make_rig(trip_expiry_s=0.5)
    cancelled = await rig.request(near(0.01))
    assert (await rig.cancel(cancelled["id"], cancelled["rider_id"])).status == 200
    assert cancelled["id"] not in await active(rig)

    expiring = await rig.request(near(0.02))

    async def expired():
        return (await rig.trip(expiring["id"]))["status"] == "expired"

    await eventually(expired, timeout=5, message="timed out waiting for the trip to expire")
    assert expiring["id"] not in await active(rig)
    assert (await trip_overview(rig))["active_trips_total"] == 0


async def test_a_trip_a_driver_cancels_stays_active(rig):
    trip_id, _, driver_id = await rig.assigned_trip(near(0.03))
    assert (await rig.act(driver_id, trip_id, "cancel")).status == 200
    listed = (await active(rig))[trip_id]
    assert listed["status"] == "requested" and "driver_id" not in listed
    assert (await trip_overview(rig))["active_trips_total"] == 1


async def test_the_lists_are_capped_and_oldest_first(make_rig):
    rig = await make_rig(Workers(dispatch=False))
    drivers = [await rig.new_driver(near(0.001 * i)) for i in range(3)]
    trips = [await rig.request(near(0.001 * i)) for i in range(3)]

    body = await driver_overview(rig, locations_limit="2")
    assert len(body["drivers"]["locations"]) == 2
    assert body["drivers"]["locations_total"] == 3
    assert {p["driver_id"] for p in body["drivers"]["locations"]} < set(drivers)
    body = await trip_overview(rig, active_limit="2")
    assert [t["trip_id"] for t in body["active_trips"]] == [t["id"] for t in trips[:2]]
    assert body["active_trips_total"] == 3

    assert len((await driver_overview(rig))["drivers"]["locations"]) == 3
    assert len((await trip_overview(rig))["active_trips"]) == 3
    for client, name in ((rig.drivers, "locations_limit"), (rig.trips, "active_limit")):
        r = await client.get("/internal/ops/overview", params={name: str(OPS_LIST_LIMIT + 1)})
        assert r.status == 422, await r.text()


async def test_regions_timers_and_events_per_second(make_rig):
    rig = await make_rig(offer_timeout_s=7.0, trip_expiry_s=90.0, dispatch_radius_m=1234.0)
    region = {"name": "sf", "bounds": {"min_lat": 37.70, "min_lon": -122.52,
                                        "max_lat": 37.83, "max_lon": -122.35}}
    trips = await trip_overview(rig)
    assert trips["regions"] == [region] and trips["trip_expiry_s"] == 90.0
    drivers = await driver_overview(rig)
    assert drivers["regions"] == [region]
    assert (drivers["offer_timeout_s"], drivers["trip_expiry_s"], drivers["dispatch_radius_m"]) \
        == (7.0, 90.0, 1234.0)

    # Samples of the stream's entries-added counter are kept in Redis (the
    # stream maintenance adds one every few seconds, each overview one more).
    await rig.new_driver(near())
    for _ in range(3):
        await rig.request(near(0.001))

    async def rate():
        value = (await driver_overview(rig))["events_per_s"]
        return value if value else None

    assert await eventually(rate, timeout=10, interval=0.2,
                            message="timed out waiting for events per second") > 0
    assert await rig.redis.zcard(keys.events_rate("sf")) >= 2
