"""Every legal transition with its side effects, and every illegal one:
409 with nothing changed (document, driver, indexes and stream compared)."""

from __future__ import annotations

import pytest

from common import keys

from tests.helpers.services import Rig, near
from tests.waiting import eventually


async def to_status(rig: Rig, status: str) -> tuple[str, str, str]:
    """A trip in `status` with its driver D: offered to D while requested,
    held or last held by D otherwise. (trip_id, rider_id, driver_id)"""
    driver_id = await rig.new_driver(near())
    trip = await rig.request(near())
    trip_id, rider_id = trip["id"], trip["rider_id"]
    await rig.offered(driver_id)
    if status == "expired":
        await eventually(lambda: _status_is(rig, trip_id, "expired"), timeout=5,
                         message="timed out waiting for expiry")
        return trip_id, rider_id, driver_id
    if status == "requested":
        return trip_id, rider_id, driver_id
    assert (await rig.accept(driver_id, trip_id)).status == 200
    steps = {"arrived": ["arrive"], "in_progress": ["arrive", "start"],
             "completed": ["arrive", "start", "complete"]}.get(status, [])
    for action in steps:
        assert (await rig.act(driver_id, trip_id, action)).status == 200
    if status == "cancelled":
        assert (await rig.cancel(trip_id, rider_id)).status == 200
        await eventually(lambda: _driver_free(rig, driver_id), timeout=5,
                         message="timed out waiting for driver released")
    return trip_id, rider_id, driver_id


async def _status_is(rig, trip_id, status):
    return (await rig.doc(trip_id))["status"] == status


async def _driver_free(rig, driver_id):
    d = await rig.driver_doc(driver_id)
    return d.get("trip_id") is None and d.get("offer") is None


async def snapshot(rig: Rig, trip_id: str, driver_id: str) -> dict:
    doc = await rig.doc(trip_id)
    r = rig.redis
    return {
        "trip": doc,
        "driver": await rig.driver_doc(driver_id),
        "events": await r.xlen(keys.events("sf")),
        "rank": await r.zscore(keys.pending("sf", "standard"), trip_id),
        "geo": await r.zscore(keys.geo("sf", "standard"), driver_id),
        "counts": await r.hgetall(keys.trip_status_counts("sf")),
        "active": await r.get(keys.rider_active(doc["rider_id"])),
        "deadlines": await r.zrange(keys.offer_deadlines("sf"), 0, -1, withscores=True),
    }


def attempt(action: str):
    async def run(rig: Rig, trip_id: str, rider_id: str, driver_id: str, other: str):
        if action == "accept":
            return await rig.accept(driver_id, trip_id)
        if action == "accept_other":
            return await rig.accept(other, trip_id)
        if action == "decline":
            return await rig.decline(driver_id, trip_id)
        if action in ("arrive", "start", "complete"):
            return await rig.act(driver_id, trip_id, action)
        if action == "driver_cancel":
            return await rig.act(driver_id, trip_id, "cancel")
        if action == "rider_cancel":
            return await rig.cancel(trip_id, rider_id)
        if action == "rate":
            return await rig.trips.post(f"/internal/trips/{trip_id}/rating",
                                        json={"rider_id": rider_id, "stars": 5})
        raise AssertionError(action)

    return run


ALL = ["accept", "accept_other", "decline", "arrive", "start", "complete", "driver_cancel",
       "rider_cancel", "rate"]
LEGAL = {
    "requested": {"accept", "decline", "rider_cancel"},
    # A repeated accept by the winner answers 200 and changes nothing.
    "assigned": {"arrive", "rider_cancel", "driver_cancel", "accept"},
    "arrived": {"start", "rider_cancel", "driver_cancel", "accept"},
    "in_progress": {"complete", "accept"},
    "completed": {"rate", "accept"},
    "cancelled": set(),
    "expired": set(),
}


@pytest.mark.parametrize("status", list(LEGAL))
async def test_illegal_transitions_change_nothing(make_rig, status):
    overrides = {"trip_expiry_s": 0.4} if status == "expired" else {}
    rig = await make_rig(**overrides)
    trip_id, rider_id, driver_id = await to_status(rig, status)
    other = await rig.new_driver(None)
    await rig.settled()
    for action in ALL:
        if action in LEGAL[status]:
            continue
        before = await snapshot(rig, trip_id, driver_id)
        r = await attempt(action)(rig, trip_id, rider_id, driver_id, other)
        # A driver never offered the trip hears nothing of it: 404, not its state.
        expected = 404 if action == "accept_other" else 409
        assert r.status == expected, (status, action, r.status, await r.text())
        body = await r.json()
        assert body["status"] == expected and body["detail"]
        assert await snapshot(rig, trip_id, driver_id) == before, (status, action)


async def test_accept_assigns_and_updates_indexes(rig):
    trip_id, rider_id, driver_id = await to_status(rig, "requested")
    r = rig.redis
    assert await r.zscore(keys.offer_deadlines("sf"), trip_id) is not None
    assert await r.zscore(keys.geo("sf", "standard"), driver_id) is None  # offered: not available
    resp = await rig.accept(driver_id, trip_id)
    trip = await resp.json()
    assert trip["status"] == "assigned" and trip["driver_id"] == driver_id
    assert "queue_position" not in trip
    assert await r.zscore(keys.pending("sf", "standard"), trip_id) is None
    assert await r.zscore(keys.pickups("sf", "standard"), trip_id) is None
    assert await r.zscore(keys.expiry_deadlines("sf"), trip_id) is None
    assert await r.zscore(keys.offer_deadlines("sf"), trip_id) is None
    assert await r.hgetall(keys.demand("sf", "standard")) == {}
    assert await r.hgetall(keys.trip_status_counts("sf")) == {"assigned": "1"}
    assert await r.zscore(keys.driver_trips(driver_id), trip_id) is not None
    d = await rig.driver_doc(driver_id)
    assert d["trip_id"] == trip_id and d.get("offer") is None and d.get("supply_cell") is None
    assert await r.llen(keys.offers(driver_id)) == 0
    # The winner repeating the accept gets 200 again, and nothing happens.
    n = await r.xlen(keys.events("sf"))
    again = await rig.accept(driver_id, trip_id)
    assert again.status == 200 and (await again.json())["status"] == "assigned"
    assert await r.xlen(keys.events("sf")) == n
    active = await rig.drivers.get(f"/internal/drivers/{driver_id}/trip")
    assert (await active.json())["id"] == trip_id


async def test_drive_to_completion_frees_driver_and_rider(rig):
    trip_id, rider_id, driver_id = await to_status(rig, "completed")
    r = rig.redis
    trip = await rig.trip(trip_id)
    assert trip["status"] == "completed"
    for stamp in ("assigned_at", "arrived_at", "started_at", "completed_at"):
        assert trip[stamp].endswith("Z")
    assert trip["fare"]["amount"] == trip["fare_estimate"]["amount"] or trip["fare"]["amount"]
    assert await r.get(keys.rider_active(rider_id)) is None
    assert await r.zscore(keys.geo("sf", "standard"), driver_id) is not None
    assert await r.hgetall(keys.trip_status_counts("sf")) == {"completed": "1"}
    assert (await rig.drivers.get(f"/internal/drivers/{driver_id}/trip")).status == 204
    # The rider may request again.
    await rig.request(near(), rider_id=rider_id)


async def test_final_fare_uses_the_trip_surge_and_minimum(rig):
    trip_id, _, driver_id = await to_status(rig, "completed")
    trip = await rig.trip(trip_id)
    # A quick ride: distance ~2.9 km at 1.20/km plus base, at least the minimum.
    assert float(trip["fare"]["amount"]) >= 7.00
    assert trip["surge"] == 1.0


@pytest.mark.parametrize("stage", ["requested", "assigned", "arrived"])
async def test_rider_cancel_frees_the_driver(rig, stage):
    trip_id, rider_id, driver_id = await to_status(rig, stage)
    r = await rig.cancel(trip_id, rider_id)
    assert r.status == 200
    trip = await r.json()
    assert trip["status"] == "cancelled" and trip["cancelled_by"] == "rider"
    assert await rig.redis.get(keys.rider_active(rider_id)) is None
    assert await rig.redis.zscore(keys.pending("sf", "standard"), trip_id) is None
    await eventually(lambda: _driver_free(rig, driver_id), timeout=5,
                     message="timed out waiting for driver released")

    async def in_geo():
        return await rig.redis.zscore(keys.geo("sf", "standard"), driver_id) is not None

    await eventually(in_geo, timeout=5, message="timed out waiting for driver available again")
    assert await rig.redis.zscore(keys.offer_deadlines("sf"), trip_id) is None
    assert (await rig.driver(driver_id))["available"] is True
    types = await rig.types_of(trip_id)
    assert types[-1] == "trip.cancelled"


@pytest.mark.parametrize("stage", ["assigned", "arrived"])
async def test_driver_cancel_requeues_in_place_and_never_reoffers(rig, stage):
    # An older trip beyond DISPATCH_RADIUS_M of everyone keeps its own place.
    older = await rig.request(near(-0.065))
    trip_id, rider_id, driver_id = await to_status(rig, stage)
    score_before = await rig.redis.zscore(keys.pending("sf", "standard"), older["id"])
    requested_ms = (await rig.doc(trip_id))["requested_ms"]
    r = await rig.act(driver_id, trip_id, "cancel", {"reason": "flat tyre"})
    assert r.status == 200
    trip = await r.json()
    assert trip["status"] == "requested" and "driver_id" not in trip
    assert trip["queue_position"] == 2
    assert await rig.redis.zscore(keys.pending("sf", "standard"), trip_id) == requested_ms
    assert await rig.redis.zscore(keys.pending("sf", "standard"), older["id"]) == score_before
    doc = await rig.doc(trip_id)
    assert driver_id in doc["refused"]
    assert await rig.redis.zscore(keys.driver_trips(driver_id), trip_id) is None
    assert await rig.redis.get(keys.rider_active(rider_id)) == trip_id
    # The driver is free again but never offered this trip again.
    assert (await rig.driver(driver_id))["available"] is True
    assert await rig.next_offer(driver_id, wait=0.3) is None
    second = await rig.new_driver(near(0.001))
    offer = await rig.offered(second)
    assert offer["trip_id"] == trip_id
    assert (await rig.driver_doc(driver_id)).get("offer") is None
    assert "trip.driver_cancelled" in await rig.types_of(trip_id)


async def test_expiry_of_a_waiting_trip(make_rig):
    rig = await make_rig(trip_expiry_s=0.3)
    trip = await rig.request(near())
    await eventually(lambda: _status_is(rig, trip["id"], "expired"), timeout=5,
                     message="timed out waiting for expiry")
    got = await rig.trip(trip["id"])
    assert got["expired_at"].endswith("Z") and "queue_position" not in got
    r = rig.redis
    assert await r.get(keys.rider_active(trip["rider_id"])) is None
    assert await r.zcard(keys.pending("sf", "standard")) == 0
    assert await r.zcard(keys.expiry_deadlines("sf")) == 0
    assert await r.hgetall(keys.demand("sf", "standard")) == {}
    assert await r.hgetall(keys.trip_status_counts("sf")) == {"expired": "1"}
    assert await rig.types_of(trip["id"]) == ["trip.requested", "trip.expired"]


async def test_rating_once(rig):
    trip_id, rider_id, driver_id = await to_status(rig, "completed")
    r = await rig.trips.post(f"/internal/trips/{trip_id}/rating",
                             json={"rider_id": rider_id, "stars": 3, "comment": "ok"})
    assert r.status == 200
    rating = (await r.json())["rating"]
    assert rating["stars"] == 3 and rating["comment"] == "ok" and rating["rated_at"]
    again = await rig.trips.post(f"/internal/trips/{trip_id}/rating",
                                 json={"rider_id": rider_id, "stars": 5})
    assert again.status == 409
