"""Both services unchanged on a three-master Redis Cluster: every script
touches one region's slot, regions live on different shards."""

from __future__ import annotations

from dataclasses import replace

import pytest

from common import ids
from common.embedded_cluster import EmbeddedCluster
from common.redisconn import create_redis
from common.scripts import load as load_functions
from common.regions import Region
from driver_service.app import create_app as create_driver_app
from trip_service.app import create_app as create_trip_app

from tests.internal import internal_headers

from tests.helpers.services import Rig
from tests.waiting import eventually

SF = Region("sf", 37.70, -122.52, 37.83, -122.35)
NYC = Region("nyc", 40.70, -74.02, 40.80, -73.93)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = EmbeddedCluster(tmp_path_factory.mktemp("cluster")).start()
    load_functions(c.url)
    yield c
    c.stop()


async def test_trips_in_two_regions_on_a_cluster(
    cluster, trip_settings, driver_settings, aiohttp_client
):
    # d1 is the nearer driver, so nothing here waits on an offer timing out; a long
    # timeout keeps a loaded machine from expiring an offer before it is fetched.
    given = {"redis_url": cluster.url, "regions": (SF, NYC), "offer_timeout_s": 10.0}
    driver_s = replace(driver_settings, **given)
    client = create_redis(cluster.url)
    trips = await aiohttp_client(create_trip_app(replace(trip_settings, **given)),
                                 headers=internal_headers())
    drivers = await aiohttp_client(create_driver_app(driver_s), headers=internal_headers())
    rig = Rig(trips, drivers, client, driver_s, None)
    try:
        for region, center in (("sf", (37.7749, -122.4194)), ("nyc", (40.75, -73.98))):
            at = {"lat": center[0], "lon": center[1]}
            rider = ids.new_id(ids.RIDER, region)
            d1 = await _driver(rig, region, at, 1)
            d2 = await _driver(rig, region, at, 2)
            trip = await rig.request(at, rider_id=rider)
            offer = await rig.offered(d1)
            assert (await rig.decline(d1, offer["trip_id"])).status == 204
            assert (await rig.offered(d2))["trip_id"] == trip["id"]
            assert (await rig.accept(d2, trip["id"])).status == 200
            assert (await rig.act(d2, trip["id"], "cancel")).status == 200
            # d1 declined and d2 cancelled: nobody left; the rider cancels.
            assert (await rig.cancel(trip["id"], rider)).status == 200
            second = await rig.request(at, rider_id=rider)
            got = await rig.offered(d1)
            assert got["trip_id"] == second["id"]
            assert (await rig.accept(d1, second["id"])).status == 200
            for action in ("arrive", "start", "complete"):
                assert (await rig.act(d1, second["id"], action)).status == 200
            r = await trips.post(f"/internal/trips/{second['id']}/rating",
                                 json={"rider_id": rider, "stars": 5})
            assert r.status == 200

            async def rated():
                return (await rig.driver(d1))["rating"] == 5.0

            await eventually(rated, timeout=5,
                             message="timed out waiting for rating on the cluster")
            timeline = await (await trips.get(f"/internal/trips/{second['id']}/timeline")).json()
            assert [e["type"] for e in timeline["events"]][-1] == "trip.rated"
        overview = await (await drivers.get("/internal/ops/overview")).json()
        assert len(overview["streams"]) == 2
        trips_overview = await (await trips.get("/internal/ops/overview")).json()
        assert trips_overview["trips_by_region"]["nyc"]["completed"] == 1
        assert (await drivers.get("/readyz")).status == 200
    finally:
        await client.aclose()


async def _driver(rig: Rig, region: str, at: dict, i: int) -> str:
    driver_id = ids.new_id(ids.DRIVER, region)
    r = await rig.drivers.post("/internal/drivers", json={
        "driver_id": driver_id, "first_name": f"D{i}", "last_name": "C", "product": "standard",
        "car": {"make": "Kia", "model": "Niro", "color": "red", "plate": f"C{i}", "seats": 4}})
    assert r.status == 201, await r.text()
    await rig.locate(driver_id, {"lat": at["lat"] + 0.001 * i, "lon": at["lon"]})
    await rig.status(driver_id, "online")
    return driver_id
