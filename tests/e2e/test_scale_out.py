"""Past one machine: on the cluster run, three regions live on three
different masters, the gateway and the services run as two replicas each
behind round-robin balancers, every replica serves (and each driver_service
consumes), and a trip goes through in every region. (The standalone run
does not collect them.)"""

from __future__ import annotations

import asyncio

import pytest
from redis.cluster import RedisCluster

from common import keys
from tests.helpers.e2e import CLUSTER_REGIONS, near, next_offer, request_trip
from tests.waiting import eventually


# Only in the cluster pass (tests/e2e/conftest.py): one server has one of each.
pytestmark = pytest.mark.cluster_only


@pytest.fixture
def cluster_client(system):
    client = RedisCluster(host="127.0.0.1", port=system.redis.nodes[0].port,
                          decode_responses=True)
    yield client
    client.close()


def test_regions_live_on_different_masters(cluster_client):
    owners = {
        region["name"]: cluster_client.get_node_from_key(keys.events(region["name"])).port
        for region in CLUSTER_REGIONS
    }
    assert len(set(owners.values())) == len(CLUSTER_REGIONS), owners


async def test_a_trip_in_every_region_on_its_own_shard(rider, driver, cluster_client):
    for region in CLUSTER_REGIONS:
        name = region["name"]
        place = {"lat": round((region["min_lat"] + region["max_lat"]) / 2, 5),
                 "lon": round((region["min_lon"] + region["max_lon"]) / 2, 5)}
        if name == "sf":
            continue  # every other test of the run is in sf
        d = await driver(at=near(place, 0.0005), region=name)
        r = await rider(region=name)
        assert r.profile["id"].startswith(f"rdr_{name}_")
        trip = await request_trip(r, place)
        assert trip["id"].startswith(f"trp_{name}_")
        await next_offer(d, trip["id"])
        accepted = await d.post(f"/v1/driver/offers/{trip['id']}/accept")
        assert accepted.status == 200, accepted
        for action in ("arrive", "start", "complete"):
            step = await d.post(f"/v1/trips/{trip['id']}/{action}")
            assert step.status == 200, step
        node = cluster_client.get_node_from_key(keys.trip(trip["id"]))
        assert node.port == cluster_client.get_node_from_key(keys.events(name)).port
        assert cluster_client.exists(keys.trip(trip["id"]))


async def test_both_replicas_of_each_process_serve_and_consume(rider, system, cluster_client):
    r = await rider()
    # Concurrent calls open several pooled connections, which the balancer spreads.
    replies = await asyncio.gather(*(r.get("/v1/trips") for _ in range(16)))
    spot = {"lat": 37.77, "lon": -122.42}
    replies += await asyncio.gather(*(r.get("/v1/drivers/nearby", params=spot)
                                      for _ in range(16)))
    assert all(x.status == 200 for x in replies), replies
    for name, procs in (("trip_service", system.system.trips),
                        ("driver_service", system.system.drivers),
                        ("gateway", system.system.gateways)):
        counts = system.system.balancers[name].connections
        assert len(procs) == 2 and all(counts[p.port] > 0 for p in procs), (name, counts)

    async def two_dispatchers():
        consumers = cluster_client.xinfo_consumers(keys.events("sf"), keys.GROUP_DISPATCH)
        return len(consumers) >= 2

    await eventually(two_dispatchers, timeout=10, interval=0.1,
                     message="both driver_service replicas consume the dispatch group")
