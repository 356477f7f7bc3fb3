"""End to end: trip_service, driver_service and the gateway as real processes
on their own real Redis, called over HTTP as a client would.

One System for the whole run, shared by every module that does not harm it
(a module that kills processes starts its own). Tests keep
out of each other's way by place, not by cleanup: each takes its own spot of
the city, farther from every other spot than DISPATCH_RADIUS_M, so a trip of
one test is never offered to a driver of another.

The suite runs twice (the `redis_mode` parameter): on one embedded server
with one process of each service, and on a Redis Cluster of three masters
serving three regions, with two replicas of the gateway and of each service,
each pair behind a round-robin balancer (the path past one machine). `E2E_REDIS=standalone` or `E2E_REDIS=cluster` runs one of
them. Every process connects as its own ACL user (common.acl); a system that
stops with a permission denial in the server's ACL LOG fails the run.
"""

from __future__ import annotations

import itertools
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import orjson
import pytest

import redis as redis_sync

from common.embedded import EmbeddedCluster, EmbeddedRedis, free_port
from tests.client import OPS_PASSWORD, OPS_USER, ApiClient, driver_body, rider_body
from tests.harness import System

# The client's names tests/security/test_acl.py takes from here.
from tests.client import PASSWORD as PASSWORD, read_sse as read_sse

Client = ApiClient

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
# The cluster run serves three regions, whose hash tags land on three
# different masters; sf stays the default home region of every test.
CLUSTER_REGIONS = [
    {"name": "sf", "min_lat": 37.70, "min_lon": -122.52, "max_lat": 37.83, "max_lon": -122.35},
    {"name": "bos", "min_lat": 42.33, "min_lon": -71.12, "max_lat": 42.40, "max_lon": -71.00},
    {"name": "nyc", "min_lat": 40.70, "min_lon": -74.02, "max_lat": 40.80, "max_lon": -73.93},
]


def modes() -> list[str]:
    wanted = os.environ.get("E2E_REDIS", "both")
    if wanted == "both":
        return list(MODES)
    if wanted not in MODES:
        raise ValueError(f"E2E_REDIS must be one of {MODES} or 'both', not {wanted!r}")
    return [wanted]


@pytest.fixture(scope="session", params=modes())
def redis_mode(request) -> str:
    return request.param


def pytest_collection_modifyitems(config, items):
    """A test marked `cluster_only` exists only in the cluster pass: on one
    server there is nothing to scale out, so it is not collected there (rather
    than skipped)."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        standalone = callspec is not None and callspec.params.get("redis_mode") == "standalone"
        (drop if standalone and item.get_closest_marker("cluster_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


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
        redis = EmbeddedCluster(base / "redis").start()
        env = {"REGIONS": orjson.dumps(CLUSTER_REGIONS).decode(), **env}
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


@pytest.fixture(scope="session")
def system(tmp_path_factory, redis_mode) -> E2ESystem:
    s = start_system(tmp_path_factory, redis_mode)
    yield s
    stop_system(s)


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture
async def http(system) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def new_client(http, system):
    def make() -> ApiClient:
        return ApiClient(http, system.url)

    return make


@pytest.fixture
def rider(new_client):
    async def make(**over) -> ApiClient:
        c = new_client()
        name = unique("r")
        r = await c.post("/v1/riders", rider_body(name, **over))
        assert r.status == 201, r
        c.profile = r.body
        await c.login(name)
        return c

    return make


@pytest.fixture
def driver(new_client):
    async def make(at: dict | None = None, product: str = "standard", **over) -> ApiClient:
        c = new_client()
        name = unique("d")
        r = await c.post("/v1/drivers", driver_body(name, product, **over))
        assert r.status == 201, r
        c.profile = r.body
        await c.login(name)
        if at is not None:
            r = await c.call("PUT", "/v1/driver/location", at)
            assert r.status == 204, r
            r = await c.post("/v1/driver/status", {"status": "online"})
            assert r.status == 200, r
        return c

    return make


@pytest.fixture
async def ops(new_client) -> ApiClient:
    c = new_client()
    await c.login(OPS_USER, OPS_PASSWORD)
    return c


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
