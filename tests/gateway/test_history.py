"""GET /v1/ops/history: the current run minute by minute, from the events the
gateway's stream readers see (real Redis streams) and its own metrics."""

from __future__ import annotations

import orjson

from common import keys
from common.events import entry_fields, envelope
from common.ids import TRIP, new_id
from gateway.history import HISTORY, History
from gateway.live import StreamEvent
from tests.helpers.gateway import OPS_PASSWORD, bearer, sign_up_and_login
from tests.waiting import eventually


def event(type_: str, trip_id: str, at_ms: int, **data) -> StreamEvent:
    env = envelope(type_, "test", trip_id=trip_id, data=data)
    return StreamEvent("sf", f"{at_ms}-0", type_, trip_id, "", orjson.dumps(env).decode())


def test_a_minute_counts_outcomes_times_assignment_and_averages_fares():
    history = History()
    t0 = history.since_ms - history.since_ms % 60_000 + 1_000
    for i, wait_ms in enumerate((1_000, 2_000, 3_000, 40_000)):
        trip = f"trp_sf_{i}"
        history.observe(event("trip.requested", trip, t0, surge=1.0 + i / 10))
        history.observe(event("trip.assigned", trip, t0 + wait_ms))
    history.observe(event("trip.completed", "trp_sf_0", t0 + 5_000,
                          fare={"amount": "10.00", "currency": "USD"}))
    history.observe(event("trip.completed", "trp_sf_1", t0 + 5_000,
                          fare={"amount": "12.50", "currency": "USD"}))
    history.observe(event("trip.offered", "trp_sf_2", t0 + 5_000))  # not an outcome
    minutes = [m for m in history.snapshot()["minutes"] if m["requested"]]
    assert len(minutes) == 1
    m = minutes[0]
    assert (m["requested"], m["assigned"], m["completed"]) == (4, 4, 2)
    assert m["to_assigned_p50_ms"] == 3_000 and m["to_assigned_p95_ms"] == 40_000
    assert m["fare_avg"] == "11.25" and m["surge_avg"] == 1.15
    assert history.snapshot()["run"]["completed"] == 2


async def test_ops_sees_the_run_and_its_own_routes_others_get_403(client, redis):
    ops = await client.post("/v1/sessions", json={"user_name": "ops",
                                                  "password": OPS_PASSWORD})
    token = (await ops.json())["token"]
    rider = await sign_up_and_login(client, "historian")
    assert (await client.get("/v1/ops/history", headers=bearer(rider["token"]))).status == 403
    trip = new_id(TRIP, "sf")
    for type_ in ("trip.requested", "trip.assigned", "trip.cancelled"):
        env = envelope(type_, "test", trip_id=trip, data={})
        await redis.xadd(keys.events("sf"), entry_fields(env))

    async def counted():
        resp = await client.get("/v1/ops/history", headers=bearer(token))
        body = await resp.json()
        return body if body["run"]["cancelled"] >= 1 else None

    body = await eventually(counted, timeout=10, interval=0.1)
    assert body["run"]["requested"] >= 1 and body["run"]["assigned"] >= 1
    assert body["minutes"] and body["minutes"][-1]["cancelled"] >= 1
    # Route figures: this gateway's metrics between two samples (every 10 s
    # in service; taken here at once).
    history = client.server.app[HISTORY]
    history.sample()
    for _ in range(3):
        assert (await client.get("/v1/me", headers=bearer(rider["token"]))).status == 200
    assert (await client.get("/v1/nothing", headers=bearer(rider["token"]))).status == 404
    history.sample()
    routes = {r["route"]: r for r in history.snapshot()["routes"]}
    me = routes["GET /v1/me"]
    assert me["requests"] == 3 and me["errors"] == 0 and me["p50_ms"] is not None
    assert not any(r.endswith("/offers/next") for r in routes)
