"""Hot, warm, cold through the gateway: a finished trip moves to the cold
store a moment after it ended (a short HOT_RETENTION_S) and every route that
reads it answers as before; the ops analytics count it; a full Redis answers
503 with Retry-After on every route, never a 500, and recovers by itself."""

from __future__ import annotations

import aiohttp
import pytest

import redis as redis_sync
from common import keys
from common.embedded_cluster import EmbeddedCluster
from tests.client import ApiClient, read_sse, rider_body
from tests.waiting import eventually

from tests.helpers.e2e import (
    assigned_trip,
    near,

    request_trip,
    spot,
    start_system,
    stop_system,
    unique,
)

TIERS_ENV = {"HOT_RETENTION_S": "1", "ARCHIVE_INTERVAL_S": "0.1", "CLAIM_IDLE_MS": "500"}


@pytest.fixture(scope="module")
def system(tmp_path_factory, redis_mode):
    s = start_system(tmp_path_factory, redis_mode, **TIERS_ENV)
    yield s
    stop_system(s)


def admin(system):
    node = system.redis.nodes[0] if isinstance(system.redis, EmbeddedCluster) else system.redis
    if isinstance(system.redis, EmbeddedCluster):
        from redis.cluster import RedisCluster

        return RedisCluster(host="127.0.0.1", port=node.port, decode_responses=True)
    return redis_sync.Redis(host="127.0.0.1", port=node.port, decode_responses=True)


def without_live_driver(trip: dict) -> dict:
    """The trip minus its driver's live part (location, eta), which moves."""
    out = dict(trip)
    if isinstance(out.get("driver"), dict):
        out["driver"] = {k: v for k, v in out["driver"].items()
                         if k not in ("location", "pickup_eta_s")}
    return out


async def test_a_cold_trip_reads_as_before_through_every_route(system, rider, driver, ops):
    r, d, trip = await assigned_trip(rider, driver)
    trip_id = trip["id"]
    for action in ("arrive", "start", "complete"):
        reply = await d.post(f"/v1/trips/{trip_id}/{action}")
        assert reply.status == 200, reply
    views = {}
    for name, client in (("rider", r), ("driver", d), ("ops", ops)):
        views[name] = (
            without_live_driver((await client.get(f"/v1/trips/{trip_id}")).body),
            (await client.get(f"/v1/trips/{trip_id}/timeline")).body,
        )
    client = admin(system)
    try:
        await eventually(lambda: not client.exists(keys.trip(trip_id)), timeout=30,
                         message="the trip to go cold")
        assert not client.exists(keys.trip_events(trip_id))
        assert client.zscore(keys.rider_trips(r.profile["id"]), trip_id) is None
    finally:
        client.close()
    for name, c in (("rider", r), ("driver", d), ("ops", ops)):
        got = await c.get(f"/v1/trips/{trip_id}")
        assert got.status == 200, got
        assert without_live_driver(got.body) == views[name][0], name
        timeline = await c.get(f"/v1/trips/{trip_id}/timeline")
        assert timeline.status == 200 and timeline.body == views[name][1], name
    for c in (r, d):
        page = await c.get("/v1/trips", params={"limit": "5"})
        assert page.status == 200 and trip_id in [t["id"] for t in page.body["items"]]
    # SSE replays a cold trip's events and ends after the terminal one.
    status, events, ended = await read_sse(
        r.session, f"{system.url}/v1/trips/{trip_id}/events", r.token
    )
    assert status == 200 and ended
    assert [e["event"] for e in events] == [e["type"] for e in views["rider"][1]["events"]]
    assert events[-1]["event"] == "trip.completed"
    # The rating window has closed; another rider still sees nothing.
    late = await r.post(f"/v1/trips/{trip_id}/rating", {"stars": 5})
    assert late.status == 409 and late.body["type"] == "/problems/rating-window-closed", late
    stranger = await rider()
    assert (await stranger.get(f"/v1/trips/{trip_id}")).status == 404
    assert (await stranger.post(f"/v1/trips/{trip_id}/rating", {"stars": 5})).status == 404
    # Ops analytics count it.
    stats = await ops.get("/v1/ops/analytics", params={"days": "1"})
    assert stats.status == 200, stats
    standard = [p for p in stats.body["per_product"] if p["product"] == "standard"]
    assert standard and standard[0]["by_outcome"]["completed"] >= 1
    assert standard[0]["request_to_assigned_s"]["p50"] is not None
    overview = await ops.get("/v1/ops/overview")
    storage = overview.body["storage"]
    assert storage["cold_store"]["trips"] >= 1
    assert storage["redis_memory"]["used_bytes"] > 0


async def test_a_full_redis_answers_503_with_retry_after_never_500(
    system, rider, driver, ops, new_client
):
    # Some state to read and act on while full.
    place = spot()
    d = await driver(at=spot())
    r = await rider()
    trip = await request_trip(r, place)
    fresh = await rider()  # no active trip: its request reaches the write
    nodes = system.admin_clients()  # every node of a cluster
    statuses: list[tuple[str, int]] = []
    try:
        for node in nodes:
            node.config_set("maxmemory", "1")
        calls = [
            ("POST", "/v1/riders", None, rider_body(unique("r"))),
            ("POST", "/v1/sessions", None, {"user_name": "nobody-here", "password": "x" * 10}),
            ("GET", "/v1/me", r, None),
            ("POST", "/v1/estimates", r, {"pickup": place, "dropoff": place}),
            ("POST", "/v1/trips", fresh, {"pickup": place, "dropoff": near(place, 0.004),
                                          "product": "standard"}),
            ("GET", f"/v1/trips/{trip['id']}", r, None),
            ("GET", "/v1/trips", r, None),
            ("GET", f"/v1/trips/{trip['id']}/timeline", r, None),
            ("POST", f"/v1/trips/{trip['id']}/cancel", r, {}),
            ("PUT", "/v1/driver/location", d, spot()),
            ("POST", "/v1/driver/status", d, {"status": "offline"}),
            ("GET", "/v1/driver/offers/next", d, None),
            ("GET", "/v1/driver/trip", d, None),
            ("GET", "/v1/drivers/nearby", r, None),
            ("GET", "/v1/ops/overview", ops, None),
            ("GET", "/v1/ops/analytics", ops, None),
            ("DELETE", "/v1/sessions/current", d, None),
        ]
        anonymous = ApiClient(r.session, system.url)
        for method, path, who, body in calls:
            c = who or anonymous
            params = {"lat": str(place["lat"]), "lon": str(place["lon"])} \
                if path == "/v1/drivers/nearby" else None
            if path == "/v1/driver/offers/next":
                params = {"wait": "0"}
            reply = await c.call(method, path, body, params=params)
            statuses.append((f"{method} {path}", reply.status))
            assert reply.status != 500, (method, path, reply)
            if reply.status == 503:
                assert reply.headers.get("Retry-After"), (method, path, reply)
                assert reply.body["type"] in ("/problems/storage-full", "/problems/unavailable")
        refused = {name for name, status in statuses if status == 503}
        # Writes that need memory are refused; what only reads or frees may pass.
        assert {"POST /v1/riders", "POST /v1/trips", "PUT /v1/driver/location"} <= refused, \
            statuses
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{system.url}/readyz") as resp:
                assert resp.status == 503  # honest: the trip service's Redis is full
    finally:
        for node in nodes:
            node.config_set("maxmemory", "0")
            node.close()
    # Memory freed: the same calls work again, with no restart.
    async def signs_up():
        c = ApiClient(r.session, system.url)
        reply = await c.post("/v1/riders", rider_body(unique("r")))
        return reply.status == 201

    await eventually(signs_up, timeout=10, message="sign-ups to work again")
    again = await request_trip(await rider(), spot())
    assert again["status"] == "requested"
