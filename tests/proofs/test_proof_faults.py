"""A dependency that is down, slow or refusing: the gateway answers a 503 or
504 problem in bounded time (before the client's 10 s timeout: a correctness
property, not a speed target), /readyz names the part that is down, and
everything heals when it comes back, without restarting anything.

Faults are injected by tests/proofs/faultproxy.py, a TCP proxy of our own,
placed between the gateway and each service, between the gateway and Redis,
and between trip_service and Redis:

    gateway --gw-trip--> trip_service --trip-redis--> Redis
       |    --gw-driver--> driver_service ----------> Redis
       +----gw-redis----------------------------------> Redis
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
import pytest

from common.scripts import load as load_functions
from common.embedded import EmbeddedRedis, free_port
from deploy.processes import ServiceProcess
from tests.proofs.faultproxy import FaultProxy
from tests.client import OPS_PASSWORD, OPS_USER, ApiClient, driver_body, rider_body
from tests.proofs.support import CENTER, PROOF_ENV, around, proof_client, record_figures
from tests.waiting import eventually

pytestmark = pytest.mark.slow

CLIENT_TIMEOUT_S = 10.0


@dataclass
class FaultRig:
    redis: EmbeddedRedis
    trips: ServiceProcess
    drivers: ServiceProcess
    gateway: ServiceProcess
    proxies: dict[str, FaultProxy]

    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.env['OPS_PORT']}"

    def pids(self) -> list[int]:
        return [p.process.pid for p in (self.trips, self.drivers, self.gateway)]


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    base = tmp_path_factory.mktemp("faults")
    redis = EmbeddedRedis(base / "redis", free_port()).start()
    load_functions(redis.url)
    env = {**PROOF_ENV, "OPS_USER_NAME": OPS_USER, "OPS_PASSWORD": OPS_PASSWORD,
           "UPSTREAM_TIMEOUT_S": "1.5", "BREAKER_COOLDOWN_S": "0.5"}
    trips = ServiceProcess("trip_service", {}, log_path=base / "trip.log")
    drivers = ServiceProcess("driver_service", {**env, "REDIS_URL": redis.url},
                             log_path=base / "driver.log")
    gateway = ServiceProcess("gateway", {}, log_path=base / "gateway.log")
    proxies = {
        "gw-trip": FaultProxy(trips.port, "gw-trip"),
        "gw-driver": FaultProxy(drivers.port, "gw-driver"),
        "gw-redis": FaultProxy(redis.port, "gw-redis"),
        "trip-redis": FaultProxy(redis.port, "trip-redis"),
    }
    for p in proxies.values():
        p.start()
    trips.env = {**env, "REDIS_URL": proxies["trip-redis"].redis_url}
    gateway.env = {
        **env,
        "REDIS_URL": proxies["gw-redis"].redis_url,
        "TRIP_SERVICE_URL": proxies["gw-trip"].url,
        "DRIVER_SERVICE_URL": proxies["gw-driver"].url,
        # The operations listener: /readyz with every check, no login.
        "OPS_PORT": str(free_port()),
    }
    started = []
    try:
        for proc in (trips, drivers, gateway):
            proc.start()
            started.append(proc)
        yield FaultRig(redis, trips, drivers, gateway, proxies)
    finally:
        for proc in reversed(started):
            proc.stop()
        for p in proxies.values():
            p.stop()
        redis.stop()


@pytest.fixture(scope="module")
def timings() -> dict:
    return {}


@dataclass
class Actors:
    rider: ApiClient
    driver: ApiClient
    trip_id: str  # assigned to the driver


async def _actors(http, base: str) -> Actors:
    rider, driver = proof_client(http, base), proof_client(http, base)
    rname, dname = f"fr{time.monotonic_ns() % 10**9}", f"fd{time.monotonic_ns() % 10**9}"
    assert (await rider.post("/v1/riders", rider_body(rname))).status == 201
    assert (await driver.post("/v1/drivers", driver_body(dname))).status == 201
    assert (await rider.login(rname)).status == 201
    assert (await driver.login(dname)).status == 201
    spot = around(CENTER, 0.02, 0.02)
    assert (await driver.call("PUT", "/v1/driver/location", spot)).status == 204
    assert (await driver.post("/v1/driver/status", {"status": "online"})).status == 200
    trip = await rider.post("/v1/trips", {"pickup": spot, "dropoff": around(spot, 0.01),
                                          "product": "standard"})
    assert trip.status == 201, trip
    offer = await driver.get("/v1/driver/offers/next", params={"wait": "10"}, timeout=20)
    assert offer.status == 200 and offer.body["trip_id"] == trip.body["id"], offer
    assert (await driver.post(f"/v1/driver/offers/{trip.body['id']}/accept")).status == 200
    return Actors(rider, driver, trip.body["id"])


@pytest.fixture(scope="module")
def actors_holder() -> dict:
    return {}


async def actors(rig: FaultRig, http, holder: dict) -> Actors:
    if "a" not in holder:
        holder["a"] = await _actors(http, rig.url)
    a = holder["a"]
    a.rider.session = a.driver.session = http
    return a


# (proxy, mode): the calls to make and the answers they may get, and what
# /readyz must say is down.
#   each call: (who, method, path, accepted statuses, what must hold of a 200)
FAULTS = {
    ("gw-trip", "refuse"): ("trip_service", [
        ("rider", "GET", "/v1/trips", {503}),
        ("rider", "GET", "/v1/trips/{trip}", {503}),
        ("rider", "POST", "/v1/estimates", {503}),
    ]),
    ("gw-trip", "delay"): ("trip_service", [
        ("rider", "GET", "/v1/trips", {503, 504}),
        ("rider", "GET", "/v1/trips/{trip}", {503, 504}),
        ("rider", "POST", "/v1/estimates", {503, 504}),
    ]),
    ("gw-driver", "refuse"): ("driver_service", [
        ("driver", "GET", "/v1/driver/trip", {503}),
        ("driver", "GET", "/v1/me", {503}),
        ("rider", "GET", "/v1/trips/{trip}", {200}),  # partial: no driver
    ]),
    ("gw-driver", "delay"): ("driver_service", [
        ("driver", "GET", "/v1/driver/trip", {503, 504}),
        ("driver", "POST", "/v1/driver/status", {503, 504}),
        ("rider", "GET", "/v1/trips/{trip}", {200}),  # partial: no driver
    ]),
    ("gw-driver", "reset"): ("driver_service", [
        ("driver", "GET", "/v1/driver/trip", {503}),
        ("rider", "GET", "/v1/trips/{trip}", {200}),
    ]),
    ("trip-redis", "refuse"): ("trip_service", [
        ("rider", "GET", "/v1/trips", {503}),
        ("rider", "GET", "/v1/trips/{trip}", {503}),
    ]),
    ("trip-redis", "delay"): ("trip_service", [
        ("rider", "GET", "/v1/trips", {503, 504}),
        ("rider", "GET", "/v1/trips/{trip}", {503, 504}),
    ]),
    ("gw-redis", "refuse"): ("redis", [
        ("rider", "GET", "/v1/me", {503}),
        ("anon", "POST", "/v1/sessions", {503}),
        ("rider", "GET", "/v1/trips/{trip}", {503}),
    ]),
    ("gw-redis", "delay"): ("redis", [
        ("rider", "GET", "/v1/me", {503, 504}),
        ("anon", "POST", "/v1/sessions", {503, 504}),
        ("rider", "GET", "/v1/trips/{trip}", {503, 504}),
    ]),
}
# Readiness checks that fail along with a part because they go through it:
# the gateway's event-stream readers read through its Redis connection.
# A check that fails with the part it depends on (the functions are read from Redis).
DOWN_WITH = {"redis": ("live_events", "functions")}
BODIES = {
    "/v1/estimates": {"pickup": CENTER, "dropoff": around(CENTER, 0.01)},
    "/v1/driver/status": {"status": "online"},
    "/v1/sessions": {"user_name": "nobody-at-all", "password": "whatever-123"},
}


async def _call(a: Actors, http, base: str, who: str, method: str, path: str):
    api = {"rider": a.rider, "driver": a.driver}.get(who) or proof_client(http, base)
    path = path.replace("{trip}", a.trip_id)
    return await api.call(method, path, BODIES.get(path), timeout=CLIENT_TIMEOUT_S)


@pytest.mark.parametrize("proxy,mode", list(FAULTS), ids=[f"{p}-{m}" for p, m in FAULTS])
async def test_a_failing_dependency_is_a_bounded_problem_and_heals(
    rig, actors_holder, timings, proxy, mode
):
    part, calls = FAULTS[(proxy, mode)]
    pids = rig.pids()
    async with aiohttp.ClientSession() as http:
        a = await actors(rig, http, actors_holder)
        anon = proof_client(http, rig.ops_url)
        rig.proxies[proxy].set(mode, delay_s=60)
        slowest = 0.0
        try:
            for _ in range(2):  # the second round meets an open circuit breaker
                for who, method, path, statuses in calls:
                    got = await _call(a, http, rig.url, who, method, path)
                    slowest = max(slowest, got.elapsed)
                    assert got.status != 0, f"{method} {path}: no answer within " \
                                            f"{CLIENT_TIMEOUT_S} s ({got.error})"
                    assert got.status in statuses, (method, path, got)
                    if got.status >= 500:
                        assert got.headers["Content-Type"].startswith("application/problem+json")
                        assert got.body["status"] == got.status
                        assert int(got.headers["Retry-After"]) >= 1
                    elif path == "/v1/trips/{trip}":
                        assert got.body["driver"] is None and got.body["missing"] == ["driver"]
            readyz = await anon.get("/readyz", timeout=CLIENT_TIMEOUT_S)
            slowest = max(slowest, readyz.elapsed)
            assert readyz.status == 503, readyz
            checks = readyz.body["checks"]
            assert checks[part].startswith("down"), checks
            others = [k for k, v in checks.items() if v != "ok" and k != part]
            assert set(others) <= set(DOWN_WITH.get(part, ())), checks
        finally:
            rig.proxies[proxy].set("pass")

        async def healed():
            r = await anon.get("/readyz")
            return r.status == 200

        await eventually(healed, timeout=20, interval=0.1, message="/readyz did not heal")
        for who, method, path, _ in calls:
            async def works():
                got = await _call(a, http, rig.url, who, method, path)
                # The unknown user's login is a 401 again, the rest succeed.
                return 200 <= got.status < 300 or (path == "/v1/sessions" and got.status == 401)

            await eventually(works, timeout=15, interval=0.1,
                             message=f"{method} {path} did not heal")
        got = await a.rider.get(f"/v1/trips/{a.trip_id}")
        assert got.body.get("driver") and "missing" not in got.body
    assert rig.pids() == pids and all(p.running for p in (rig.trips, rig.drivers, rig.gateway))
    timings[f"{proxy}-{mode}"] = round(slowest, 2)
    record_figures("faults", {"slowest_answer_s": timings, "client_timeout_s": CLIENT_TIMEOUT_S})


async def test_redis_stopped_for_everyone_is_503_and_heals(rig, actors_holder, timings):
    """Redis itself goes away (kill -9) under every process at once: problems
    in bounded time, /readyz names Redis and the services that need it, and
    all heal when it is back on the same data."""
    pids = rig.pids()
    async with aiohttp.ClientSession() as http:
        a = await actors(rig, http, actors_holder)
        anon = proof_client(http, rig.ops_url)
        rig.redis.kill()
        slowest = 0.0
        try:
            for who, method, path in (("rider", "GET", "/v1/me"),
                                      ("rider", "GET", "/v1/trips/{trip}"),
                                      ("driver", "GET", "/v1/driver/trip"),
                                      ("anon", "POST", "/v1/sessions")):
                got = await _call(a, http, rig.url, who, method, path)
                slowest = max(slowest, got.elapsed)
                assert got.status in (503, 504), (method, path, got)
                assert got.headers["Content-Type"].startswith("application/problem+json")
            readyz = await anon.get("/readyz", timeout=CLIENT_TIMEOUT_S)
            assert readyz.status == 503, readyz
            checks = readyz.body["checks"]
            assert all(checks[part].startswith("down") for part in
                       ("redis", "trip_service", "driver_service")), checks
        finally:
            await asyncio.to_thread(rig.redis.start)

        async def healed():
            return (await anon.get("/readyz")).status == 200

        await eventually(healed, timeout=30, interval=0.1, message="/readyz did not heal")

        async def works():
            me = await a.rider.get("/v1/me")
            trip = await a.rider.get(f"/v1/trips/{a.trip_id}")
            return me.status == 200 and trip.status == 200 and trip.body.get("driver")

        await eventually(works, timeout=15, interval=0.1, message="the rider's calls did not heal")
    assert rig.pids() == pids
    timings["redis-killed"] = round(slowest, 2)
    record_figures("faults", {"slowest_answer_s": timings})
