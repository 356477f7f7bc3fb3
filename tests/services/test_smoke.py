"""One trip from request to rating, through both services."""

from __future__ import annotations

from tests.helpers.services import near
from tests.waiting import eventually


async def test_trip_lifecycle_end_to_end(rig):
    driver_id = await rig.new_driver(near(0.001))
    trip = await rig.request(near())
    assert trip["status"] == "requested" and trip["queue_position"] == 1
    offer = await rig.offered(driver_id)
    assert offer["trip_id"] == trip["id"]
    assert offer["distance_to_pickup_m"] > 0
    r = await rig.accept(driver_id, trip["id"])
    assert r.status == 200, await r.text()
    assert (await r.json())["status"] == "assigned"
    for action, status in (("arrive", "arrived"), ("start", "in_progress"),
                           ("complete", "completed")):
        r = await rig.act(driver_id, trip["id"], action)
        assert r.status == 200, await r.text()
        assert (await r.json())["status"] == status
    done = await rig.trip(trip["id"])
    assert done["fare"]["currency"] == "USD"
    r = await rig.trips.post(f"/internal/trips/{trip['id']}/rating",
                             json={"rider_id": trip["rider_id"], "stars": 4})
    assert r.status == 200, await r.text()

    async def rated():
        return (await rig.driver(driver_id))["rating"] == 4.0

    await eventually(rated, timeout=5,
                     message="timed out waiting for the rating to reach the driver")
    driver = await rig.driver(driver_id)
    assert driver["available"] is True
    assert await rig.types_of(trip["id"]) == [
        "trip.requested", "trip.offered", "trip.assigned", "trip.driver_arrived",
        "trip.started", "trip.completed", "trip.rated",
    ]
