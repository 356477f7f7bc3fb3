"""The end-to-end system and what its tests share: places in the city, a
system of real processes, and the steps of a trip as a client takes them."""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass

import orjson
import redis as redis_sync

from common.embedded import EmbeddedRedis, free_port
from common.embedded_cluster import EmbeddedCluster
from tests.client import ApiClient
from tests.harness import System

E2E_ENV = {
    "OFFER_TIMEOUT_S": "3",
    "TRIP_EXPIRY_S": "30",
    "DISPATCH_RADIUS_M": "400",
    "SWEEP_INTERVAL_S": "0.05",
    "CLAIM_IDLE_MS": "1000",
    "RATE_LIMIT_PER_TOKEN": "0",
    "LOGIN_FAILURES_LIMIT": "3",
    "UPSTREAM_TIMEOUT_S": "2",
    "BREAKER_COOLDOWN_S": "0.5",
    "SSE_PING_S": "1",
    "STREAM_BLOCK_MS": "200",
}

_spots = itertools.count()


def spot() -> dict[str, float]:
    """A fresh place in the sf region, about 1 km from every other one."""
    i = next(_spots)
    row, col = divmod(i % 130, 13)
    return {"lat": round(37.705 + row * 0.0115, 5), "lon": round(-122.51 + col * 0.0125, 5)}


def near(point: dict[str, float], d_lat: float = 0.0008, d_lon: float = 0.0) -> dict[str, float]:
    return {"lat": round(point["lat"] + d_lat, 6), "lon": round(point["lon"] + d_lon, 6)}


MODES = ("standalone", "cluster")
# Replicas of each service per mode: the cluster run scales the services out.
REPLICAS = {"standalone": 1, "cluster": 2}
# The cluster run (three shards of a primary and two replicas, WAIT_REPLICAS=1)
# serves three regions, whose hash tags land on three different shards; sf
# stays the default home region of every test.
CLUSTER_REGIONS = [
    {"name": "sf", "min_lat": 37.70, "min_lon": -122.52, "max_lat": 37.83, "max_lon": -122.35},
    {"name": "bos", "min_lat": 42.33, "min_lon": -71.12, "max_lat": 42.40, "max_lon": -71.00},
    {"name": "nyc", "min_lat": 40.70, "min_lon": -74.02, "max_lat": 40.80, "max_lon": -73.93},
]


@dataclass
class E2ESystem:
    system: System
    redis: EmbeddedRedis | EmbeddedCluster
    mode: str = "standalone"

    @property
    def url(self) -> str:
        return self.system.url

    @property
    def ops_url(self) -> str:
        return self.system.ops_url

    def admin_clients(self) -> list[redis_sync.Redis]:
        """An admin connection to each server (every node of a cluster)."""
        nodes = self.redis.nodes if isinstance(self.redis, EmbeddedCluster) else [self.redis]
        return [redis_sync.Redis(host="127.0.0.1", port=n.port, decode_responses=True)
                for n in nodes]

    def acl_denials(self) -> list[dict]:
        """Permission denials in the ACL LOG of every node."""
        denials = []
        for client in self.admin_clients():
            try:
                denials += client.execute_command("ACL", "LOG")
            finally:
                client.close()
        return denials


def start_system(
    tmp_path_factory, mode: str = "standalone", *, replicas: int | None = None, **env: str
) -> E2ESystem:
    base = tmp_path_factory.mktemp(f"e2e-{mode}")
    if mode == "cluster":
        # The replicated topology: three shards, each a primary with two
        # replicas, every acknowledged write confirmed by one of them.
        redis = EmbeddedCluster(base / "redis", masters=3, replicas=2).start()
        env = {"REGIONS": orjson.dumps(CLUSTER_REGIONS).decode(), "WAIT_REPLICAS": "1", **env}
    else:
        redis = EmbeddedRedis(base / "redis", free_port()).start()
    replicas = REPLICAS[mode] if replicas is None else replicas
    system = System(redis.url, base, env={**E2E_ENV, **env}, replicas=replicas,
                    gateway_replicas=replicas)
    try:
        system.start()
    except BaseException:
        system.stop()
        redis.stop()
        raise
    return E2ESystem(system, redis, mode)


def stop_system(s: E2ESystem) -> None:
    try:
        denials = s.acl_denials()
    finally:
        s.system.stop()
        s.redis.stop()
    assert not denials, f"a service was denied by its ACL user: {denials}"


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


async def next_offer(driver: ApiClient, trip_id: str | None = None, wait: float = 10) -> dict:
    """Long-poll until an offer (for `trip_id`, if given) arrives."""
    import time

    deadline = time.monotonic() + wait + 5
    while time.monotonic() < deadline:
        r = await driver.get("/v1/driver/offers/next", params={"wait": "5"})
        assert r.status in (200, 204), r
        if r.status == 200 and (trip_id is None or r.body["trip_id"] == trip_id):
            return r.body
    raise AssertionError(f"no offer for {trip_id} within {wait}s")


async def request_trip(rider: ApiClient, pickup: dict, product: str = "standard", **kw) -> dict:
    r = await rider.post(
        "/v1/trips",
        {"pickup": pickup, "dropoff": near(pickup, 0.004), "product": product},
        **kw,
    )
    assert r.status == 201, r
    return r.body


async def assigned_trip(rider_factory, driver_factory) -> tuple[ApiClient, ApiClient, dict]:
    """A rider, a driver, and a trip the driver accepted."""
    place = spot()
    d = await driver_factory(at=near(place, 0.0005))
    r = await rider_factory()
    trip = await request_trip(r, place)
    await next_offer(d, trip["id"])
    accepted = await d.post(f"/v1/driver/offers/{trip['id']}/accept")
    assert accepted.status == 200, accepted
    return r, d, accepted.body
