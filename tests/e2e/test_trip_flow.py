"""A whole trip through the public API, from sign-up to rating, with its live
events, timeline, listing, idempotent retry and trace context."""

from __future__ import annotations

import asyncio
import os

from tests.client import read_sse
from tests.helpers.e2e import near, next_offer, request_trip, spot
from tests.waiting import eventually

TERMINAL = {"trip.completed", "trip.cancelled", "trip.expired"}


async def test_a_whole_trip_from_sign_up_to_rating(rider, driver, ops, http, system):
    place = spot()
    d = await driver(at=near(place, 0.0005))
    assert d.profile["status"] == "offline" and d.profile["car"]["seats"] == 4
    me = await d.get("/v1/me")
    assert me.status == 200 and me.body["status"] == "online" and me.body["product"] == "standard"
    r = await rider()
    assert r.profile["id"].startswith("rdr_sf_")

    # Estimates: one per product, ETAs from driver_service.
    est = await r.post("/v1/estimates", {"pickup": place, "dropoff": near(place, 0.004)})
    assert est.status == 200, est
    products = {e["product"]: e for e in est.body["estimates"]}
    assert set(products) == {"standard", "xl", "premium"}
    assert products["standard"]["pickup_eta_s"] is not None
    assert products["premium"]["pickup_eta_s"] is None
    assert "missing" not in est.body
    assert products["standard"]["fare"]["currency"] and products["standard"]["fare"]["amount"]

    # Nearby drivers: no identities.
    nearby = await r.get(
        "/v1/drivers/nearby", params={"lat": place["lat"], "lon": place["lon"], "radius_m": 300}
    )
    assert nearby.status == 200 and nearby.body["count"] >= 1
    assert all("id" not in x and "driver_id" not in x for x in nearby.body["drivers"])

    # Request, with a W3C trace context the events must carry.
    trace_id = os.urandom(16).hex()
    trip = await request_trip(
        r, place, headers={"traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01"}
    )
    trip_id = trip["id"]
    assert trip["status"] == "requested" and trip["rider_id"] == r.subject_id
    assert trip["fare_estimate"]["amount"]
    # Server-owned fields cannot be set: a second request is refused as active.
    again = await r.post(
        "/v1/trips",
        {"pickup": place, "dropoff": near(place, 0.004), "product": "standard",
         "status": "completed", "fare": {"amount": "0.00", "currency": "USD"}},
    )
    assert again.status == 409

    got = await r.get(f"/v1/trips/{trip_id}")
    assert got.status == 200
    if got.body["status"] == "requested":
        assert got.body["queue_position"] >= 1

    # The live stream, read from the start in the background.
    stream = asyncio.create_task(
        read_sse(http, f"{system.url}/v1/trips/{trip_id}/events", r.token, timeout=60)
    )

    offer = await next_offer(d, trip_id)
    assert offer["pickup"] == place and offer["product"] == "standard"
    assert offer["distance_to_pickup_m"] >= 0 and offer["expires_at"].endswith("Z")
    accepted = await d.post(f"/v1/driver/offers/{trip_id}/accept")
    assert accepted.status == 200 and accepted.body["status"] == "assigned"
    repeat = await d.post(f"/v1/driver/offers/{trip_id}/accept")
    assert repeat.status == 200 and repeat.body["status"] == "assigned"

    # The trip with its driver, fetched together.
    got = await r.get(f"/v1/trips/{trip_id}")
    assert got.body["status"] == "assigned"
    assert "queue_position" not in got.body
    assert got.body["driver"]["id"] == d.subject_id
    assert got.body["driver"]["first_name"] == "Dan"
    assert got.body["driver"]["car"]["plate"] == "7ABC123"
    assert got.body["driver"]["location"]["lat"]
    assert "missing" not in got.body
    seen_by_driver = await d.get(f"/v1/trips/{trip_id}")
    assert seen_by_driver.status == 200
    current = await d.get("/v1/driver/trip")
    assert current.status == 200 and current.body["id"] == trip_id

    for action, status in (("arrive", "arrived"), ("start", "in_progress")):
        step = await d.post(f"/v1/trips/{trip_id}/{action}")
        assert step.status == 200 and step.body["status"] == status, step
    # A rider cannot cancel a trip in progress.
    late = await r.post(f"/v1/trips/{trip_id}/cancel")
    assert late.status == 409
    done = await d.post(f"/v1/trips/{trip_id}/complete")
    assert done.status == 200 and done.body["status"] == "completed"
    assert done.body["fare"]["amount"] and done.body["completed_at"].endswith("Z")
    assert (await d.get("/v1/driver/trip")).status == 204

    status, messages, ended = await asyncio.wait_for(stream, 30)
    assert status == 200 and ended
    types = [m["event"] for m in messages]
    # The rider sees the trip's public story: no offers to drivers.
    assert types == [
        "trip.requested", "trip.assigned", "trip.driver_arrived", "trip.started",
        "trip.completed",
    ]
    assert all(m["data"]["trip_id"] == trip_id for m in messages)
    assert all(m["data"]["type"] == m["event"] for m in messages)
    # The trace id of the request is in the event it caused.
    assert messages[0]["data"]["trace_id"] == trace_id

    # Resume after the third event: only later ones, then the end.
    status, resumed, ended = await read_sse(
        http, f"{system.url}/v1/trips/{trip_id}/events", r.token,
        last_event_id=messages[2]["id"],
    )
    assert ended and [m["id"] for m in resumed] == [m["id"] for m in messages[3:]]

    # Rating: once, by the rider.
    rated = await r.post(f"/v1/trips/{trip_id}/rating", {"stars": 5, "comment": "smooth"})
    assert rated.status == 200, rated
    assert rated.body["rating"]["stars"] == 5 and rated.body["rating"]["comment"] == "smooth"
    assert rated.body["rating"]["rated_at"].endswith("Z")
    assert (await r.post(f"/v1/trips/{trip_id}/rating", {"stars": 4})).status == 409
    assert (await r.post(f"/v1/trips/{trip_id}/rating", {"stars": 6})).status == 422

    async def driver_rated():
        me = await d.get("/v1/me")
        return me.body.get("rating") == 5

    await eventually(driver_rated, timeout=10, interval=0.1)

    # The rider's timeline: the same public story (and the rating), no deliveries.
    timeline = await r.get(f"/v1/trips/{trip_id}/timeline")
    assert timeline.status == 200 and timeline.body["trip_id"] == trip_id
    events = timeline.body["events"]
    assert [e["type"] for e in events] == [*types, "trip.rated"]
    assert all("deliveries" not in e for e in events)
    first = events[0]
    assert first["trace_id"] == trace_id and first["producer"] == "trip_service"
    assert first["occurred_at"].endswith("Z")
    assert [e["type"] for e in (await d.get(f"/v1/trips/{trip_id}/timeline")).body["events"]] \
        == [*types, "trip.rated"]

    # Ops sees everything: the offer too, each event with its deliveries
    # through the consumer groups.
    o = ops
    everything = await o.get(f"/v1/trips/{trip_id}/timeline")
    assert "trip.offered" in [e["type"] for e in everything.body["events"]]

    async def delivered():
        tl = await o.get(f"/v1/trips/{trip_id}/timeline")
        d0 = tl.body["events"][0]["deliveries"]
        return d0 and all(x["acked_at"] for x in d0)

    await eventually(delivered, timeout=10, interval=0.1)
    tl = await o.get(f"/v1/trips/{trip_id}/timeline")
    delivery = tl.body["events"][0]["deliveries"][0]
    assert {"group", "consumer", "delivered_at", "acked_at", "attempts"} <= set(delivery)
    assert delivery["attempts"] >= 1 and delivery["delivered_at"].endswith("Z")

    # Both sides see the trip in their history.
    rider_list = await r.get("/v1/trips")
    assert rider_list.body["items"][0]["id"] == trip_id
    driver_list = await d.get("/v1/trips")
    assert driver_list.body["items"][0]["id"] == trip_id


async def test_the_trip_list_pages_with_a_cursor(rider):
    r = await rider()
    ids = []
    for _ in range(3):
        trip = await request_trip(r, spot())
        ids.append(trip["id"])
        cancelled = await r.post(f"/v1/trips/{trip['id']}/cancel", {"reason": "testing"})
        assert cancelled.status == 200 and cancelled.body["status"] == "cancelled"
        assert cancelled.body["cancelled_by"] == "rider"
    page1 = await r.get("/v1/trips", params={"limit": "2"})
    assert page1.status == 200
    assert [t["id"] for t in page1.body["items"]] == ids[::-1][:2]
    assert page1.body["next_cursor"]
    page2 = await r.get("/v1/trips", params={"limit": "2", "cursor": page1.body["next_cursor"]})
    assert [t["id"] for t in page2.body["items"]] == ids[:1]
    assert page2.body["next_cursor"] is None


async def test_an_idempotent_retry_replays_and_creates_nothing(rider):
    r = await rider()
    place = spot()
    body = {"pickup": place, "dropoff": near(place, 0.004), "product": "xl"}
    key = {"Idempotency-Key": os.urandom(8).hex()}
    first = await r.post("/v1/trips", body, headers=key)
    assert first.status == 201 and "Idempotent-Replayed" not in first.headers
    second = await r.post("/v1/trips", body, headers=key)
    assert second.status == 201
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.body == first.body
    other = await r.post("/v1/trips", {**body, "product": "premium"}, headers=key)
    assert other.status == 422
    assert other.body["errors"][0]["field"] == "Idempotency-Key"
    history = await r.get("/v1/trips")
    assert [t["id"] for t in history.body["items"]] == [first.body["id"]]
    await r.post(f"/v1/trips/{first.body['id']}/cancel")


async def test_concurrent_duplicates_create_one_trip(rider):
    r = await rider()
    place = spot()
    body = {"pickup": place, "dropoff": near(place, 0.004), "product": "xl"}
    key = {"Idempotency-Key": os.urandom(8).hex()}
    replies = await asyncio.gather(*(r.post("/v1/trips", body, headers=key) for _ in range(5)))
    assert {x.status for x in replies} == {201}
    assert len({x.body["id"] for x in replies}) == 1
    assert sum(1 for x in replies if x.headers.get("Idempotent-Replayed") == "true") == 4
    history = await r.get("/v1/trips")
    assert len(history.body["items"]) == 1
    await r.post(f"/v1/trips/{replies[0].body['id']}/cancel")


async def test_a_failed_attempt_stores_nothing(rider):
    r = await rider()
    place = spot()
    blocker = await request_trip(r, place)
    body = {"pickup": place, "dropoff": near(place, 0.004), "product": "premium"}
    key = {"Idempotency-Key": os.urandom(8).hex()}
    refused = await r.post("/v1/trips", body, headers=key)
    assert refused.status == 409  # the active trip
    await r.post(f"/v1/trips/{blocker['id']}/cancel")
    retried = await r.post("/v1/trips", body, headers=key)
    assert retried.status == 201 and "Idempotent-Replayed" not in retried.headers
    await r.post(f"/v1/trips/{retried.body['id']}/cancel")


async def test_the_events_of_a_finished_trip_replay_and_end(rider, http, system):
    r = await rider()
    trip = await request_trip(r, spot())
    await r.post(f"/v1/trips/{trip['id']}/cancel")
    status, messages, ended = await read_sse(
        http, f"{system.url}/v1/trips/{trip['id']}/events", r.token
    )
    assert status == 200 and ended
    assert [m["event"] for m in messages] == ["trip.requested", "trip.cancelled"]
    status, messages, ended = await read_sse(
        http, f"{system.url}/v1/trips/{trip['id']}/events", r.token,
        last_event_id=messages[-1]["id"],
    )
    assert ended and messages == []


async def test_queue_position_counts_older_requests_first(rider):
    place = spot()  # no driver here: the trips wait
    riders = [await rider() for _ in range(3)]
    trips = [await request_trip(x, near(place, 0.0001 * i), product="premium")
             for i, x in enumerate(riders)]
    positions = []
    for x, trip in zip(riders, trips):
        got = await x.get(f"/v1/trips/{trip['id']}")
        positions.append(got.body["queue_position"])
    assert positions == sorted(positions) and len(set(positions)) == 3
    await riders[0].post(f"/v1/trips/{trips[0]['id']}/cancel")
    got = await riders[2].get(f"/v1/trips/{trips[2]['id']}")
    assert got.body["queue_position"] == positions[2] - 1
    for x, trip in zip(riders[1:], trips[1:]):
        await x.post(f"/v1/trips/{trip['id']}/cancel")
