"""Processes die, hang and come back: the gateway answers 503/504 problems
(never a 500), partial answers where a part is optional, /readyz names what is
down, and everything heals without restarting the gateway. Sessions survive
restarts of the gateway and of Redis.

This module kills processes, so it has a System of its own.
"""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from tests.client import SseReader
from tests.helpers.e2e import (
    assigned_trip,
    near,
    request_trip,
    spot,
    start_system,
    stop_system,
)
from tests.waiting import eventually


@pytest.fixture(scope="module")
def system(tmp_path_factory, redis_mode):
    # A short upstream timeout keeps the hung-service case quick. One process
    # of each service, also on the cluster: these tests take "the" service down.
    s = start_system(tmp_path_factory, redis_mode, replicas=1, UPSTREAM_TIMEOUT_S="0.7")
    yield s
    stop_system(s)


def retryable(r, status: int) -> None:
    assert r.status == status, r
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert int(r.headers["Retry-After"]) >= 1


def operations(new_client, system):
    """A client of the gateway's operations listener: /readyz names what is
    down, /metrics; no login (it works with Redis down too)."""
    c = new_client()
    c.base = system.ops_url
    return c


async def ready(client) -> bool:
    return (await client.get("/readyz")).status == 200


async def not_ready(client) -> bool:
    return (await client.get("/readyz")).status == 503


def reads_failed(log) -> int:
    """Failed reads of the sf stream by the gateway's event hub, from its log."""
    return log.read_text(errors="replace").count('"msg":"reading rh:{sf}:events failed')


async def test_trip_service_down_is_503_named_by_readyz_and_heals(rider, new_client, system):
    r = await rider()
    trip = await request_trip(r, spot())
    trips = system.system.trips[0]
    trips.kill()
    try:
        got = await r.get(f"/v1/trips/{trip['id']}")
        retryable(got, 503)
        for _ in range(8):  # past the breaker's threshold: fast failures
            retryable(await r.get("/v1/trips"), 503)
        readyz = await operations(new_client, system).get("/readyz")
        retryable(readyz, 503)
        assert readyz.body["checks"]["trip_service"].startswith("down")
        assert readyz.body["checks"]["driver_service"] == "ok"
        assert readyz.body["checks"]["redis"] == "ok"
        metrics = await operations(new_client, system).get("/metrics")
        assert 'circuit_breaker_state{upstream="trip_service"} 2.0' in metrics.text
    finally:
        trips.start()
    await eventually(lambda: ready(new_client()), timeout=15, interval=0.1)

    async def healed():
        return (await r.get(f"/v1/trips/{trip['id']}")).status == 200

    await eventually(healed, timeout=10, interval=0.1)
    await r.post(f"/v1/trips/{trip['id']}/cancel")


async def test_driver_service_down_gives_partial_answers(rider, driver, ops, new_client, system):
    owner, d, trip = await assigned_trip(rider, driver)
    place = spot()
    drivers = system.system.drivers[0]
    drivers.kill()
    try:
        got = await owner.get(f"/v1/trips/{trip['id']}")
        assert got.status == 200, got
        assert got.body["status"] == "assigned"
        assert got.body["driver"] is None and got.body["missing"] == ["driver"]
        est = await owner.post("/v1/estimates", {"pickup": place, "dropoff": near(place, 0.004)})
        assert est.status == 200 and est.body["missing"] == ["pickup_eta_s"]
        assert all(e["pickup_eta_s"] is None for e in est.body["estimates"])
        overview = await ops.get("/v1/ops/overview")
        assert overview.status == 200 and overview.body["missing"] == ["drivers"]
        assert "trips_by_status" in overview.body
        # A driver-side route needs driver_service: a 503 problem, never a 500.
        retryable(await d.get("/v1/driver/trip"), 503)
        retryable(await d.get("/v1/me"), 503)
        readyz = await operations(new_client, system).get("/readyz")
        assert readyz.status == 503 and readyz.body["checks"]["driver_service"].startswith("down")
    finally:
        drivers.start()
    await eventually(lambda: ready(new_client()), timeout=15, interval=0.1)

    async def whole():
        got = await owner.get(f"/v1/trips/{trip['id']}")
        return got.status == 200 and got.body.get("driver") and "missing" not in got.body

    await eventually(whole, timeout=10, interval=0.1)
    await owner.post(f"/v1/trips/{trip['id']}/cancel")


async def test_a_hung_service_is_504_and_the_optional_part_is_left_out(rider, driver, system):
    owner, d, trip = await assigned_trip(rider, driver)
    drivers = system.system.drivers[0]
    os.kill(drivers.process.pid, signal.SIGSTOP)
    try:
        got = await owner.get(f"/v1/trips/{trip['id']}")
        assert got.status == 200 and got.body["missing"] == ["driver"]
        hung = await d.get("/v1/driver/trip")
        assert hung.status in (503, 504), hung  # 504, or 503 once the breaker opened
        assert hung.headers["Content-Type"].startswith("application/problem+json")
    finally:
        os.kill(drivers.process.pid, signal.SIGCONT)

    async def back():
        return (await d.get("/v1/driver/trip")).status == 200

    await eventually(back, timeout=15, interval=0.2)
    await owner.post(f"/v1/trips/{trip['id']}/cancel")


async def test_sessions_survive_a_gateway_restart(rider, system):
    r = await rider()
    gateway = system.system.gateway
    gateway.stop()
    gateway.start()
    me = await r.get("/v1/me")
    assert me.status == 200 and me.body["id"] == r.subject_id


async def test_sessions_and_trips_survive_a_redis_crash(rider, new_client, http, system):
    r = await rider()
    trip = await request_trip(r, spot())
    log = system.system.gateway.log_path
    before = reads_failed(log)
    system.redis.kill()  # kill -9 (of every node, on the cluster run)
    try:
        # While it is down: a problem with Retry-After, never a 500; and down
        # until the gateway's stream reader has failed twice (on a cluster the
        # second is the client's failed rediscovery), which it must outlive.
        down = await r.get("/v1/me")
        assert down.status in (503, 504), down
        assert down.headers["Content-Type"].startswith("application/problem+json")
        await eventually(lambda: not_ready(new_client()), timeout=10, interval=0.1)
        await eventually(lambda: reads_failed(log) >= before + 2, timeout=15, interval=0.1,
                         message="the gateway's stream reader stopped retrying")
    finally:
        system.redis.start()
    await eventually(lambda: ready(new_client()), timeout=20, interval=0.2)

    async def works():
        me = await r.get("/v1/me")
        return me.status == 200

    await eventually(works, timeout=10, interval=0.2)
    got = await r.get(f"/v1/trips/{trip['id']}")
    assert got.status == 200 and got.body["status"] == "requested"
    # Live events flow again: the gateway's stream reader reconnected.
    async with http.get(
        f"{system.url}/v1/trips/{trip['id']}/events",
        headers={"Authorization": f"Bearer {r.token}"},
    ) as resp:
        assert resp.status == 200
        stream = SseReader(resp)
        first = await stream.next()
        assert first["event"] == "trip.requested"  # the replay; now a live one
        cancelled = await r.post(f"/v1/trips/{trip['id']}/cancel")
        assert cancelled.status == 200
        try:
            live = await asyncio.wait_for(stream.next(), 15)
        except asyncio.TimeoutError:
            readyz = await operations(new_client, system).get("/readyz")
            raise AssertionError(
                f"no live event within 15 s; /readyz {readyz.status} {readyz.body}; gateway log:\n"
                + log.read_text(errors="replace")[-4000:]
            ) from None
        assert live["event"] == "trip.cancelled"
        assert await asyncio.wait_for(stream.next(), 15) is None
