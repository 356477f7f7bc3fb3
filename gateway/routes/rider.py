"""Rider routes, and the trip routes riders and drivers share."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiohttp import web

from common import errors, keys
from common.events import PUBLIC_TRIP_TYPES, TERMINAL_TYPES
from common.ids import TRIP, new_id

from .. import models, views
from ..api import ANY_ROLE, Call, Header, Response
from ..idempotency import IDEMPOTENCY_KEY_PATTERN, check_key
from ..live import DROPPED, parse_stream_id
from ..sse import CLIENT_GONE, open_stream
from ..upstream import Reply, UpstreamProblem
from . import api
from .shared import (
    can_see_trip,
    check_trip_id,
    driver_holds_or_404,
    json,
    load_trip,
    no_such_trip,
    ok,
)

logger = logging.getLogger(__name__)

TRIP_ROLES = ("rider", "driver")


@api.route(
    "POST",
    "/v1/estimates",
    summary="Fare estimates for every product",
    tags="rider",
    roles=("rider",),
    body=models.EstimateRequest,
    responses=ok(models.Estimates, "One estimate per product."),
    errors=(503, 504),
    description="Fans out to trip_service (fares, surge) and driver_service (pickup ETAs) "
    "at once. `pickup_eta_s` is null where no driver of that product is near. If only "
    "driver_service fails, the estimates come without ETAs and `missing: "
    "[\"pickup_eta_s\"]`. The pickup must be inside the caller's region and the drop-off "
    "within `MAX_TRIP_DISTANCE_M` (default 100 km, straight line) of it (422).",
)
async def post_estimates(call: Call) -> web.Response:
    body: models.EstimateRequest = call.body
    region = call.caller.region
    upstreams = call.deps.upstreams
    pickup = body.pickup.model_dump()
    fares, etas = await asyncio.gather(
        upstreams.trips.call(
            "POST",
            "/internal/estimates",
            json={"region": region, "pickup": pickup, "dropoff": body.dropoff.model_dump()},
            idempotent=True,
        ),
        # Optional: one attempt, so a slow driver_service cannot hold the fares back.
        upstreams.drivers.call(
            "POST",
            "/internal/etas",
            json={"region": region, "pickup": pickup},
            idempotent=True,
            retries=0,
        ),
        return_exceptions=True,
    )
    if isinstance(fares, BaseException):
        raise fares
    eta_by_product: dict[str, Any] = {}
    missing = None
    if isinstance(etas, Reply) and isinstance(etas.body, dict):
        eta_by_product = etas.body.get("etas") or {}
    else:
        if isinstance(etas, BaseException) and not isinstance(etas, Exception):
            raise etas
        logger.warning("estimates without ETAs: %r", etas)
        missing = ["pickup_eta_s"]
    estimates = []
    for item in (fares.body or {}).get("estimates", []):
        estimate = {
            "product": item.get("product"),
            "fare": item.get("fare"),
            "surge": item.get("surge"),
            "distance_m": item.get("distance_m"),
            "duration_s": item.get("duration_s"),
            "pickup_eta_s": eta_by_product.get(item.get("product")),
        }
        estimates.append(estimate)
    out: dict[str, Any] = {"estimates": estimates}
    if missing:
        out["missing"] = missing
    return json(out)


@api.route(
    "POST",
    "/v1/trips",
    summary="Request a trip",
    tags="rider",
    roles=("rider",),
    body=models.TripCreate,
    headers=(
        Header(
            "Idempotency-Key",
            "Optional. The same key from the same rider within 24 h replays the first "
            "answer (status and body, with `Idempotent-Replayed: true`) and creates nothing; "
            "the same key with a different body is 422; a failed attempt stores nothing. A "
            "duplicate sent while the first is still running waits for its answer. "
            "1-255 visible ASCII characters (422 otherwise).",
            pattern=IDEMPOTENCY_KEY_PATTERN,
        ),
    ),
    responses={
        201: Response(
            "The trip, `status: requested`.",
            models.Trip,
            headers={
                "Location": "The trip's URL.",
                "Idempotent-Replayed": "`true` when this is a replayed answer.",
            },
        )
    },
    errors=(409, 503, 504),
    description="409 when the rider already has an active trip (requested, assigned, "
    "arrived or in_progress). The pickup must be inside the rider's region and the "
    "drop-off within `MAX_TRIP_DISTANCE_M` (default 100 km, straight line) of it (422).",
)
async def post_trip(call: Call) -> web.Response:
    body: models.TripCreate = call.body
    caller = call.caller
    payload = body.model_dump(mode="json")
    trips = call.deps.upstreams.trips

    async def attempt(trip_id: str) -> tuple[int, bytes]:
        reply = await trips.call(
            "POST",
            "/internal/trips",
            json={"trip_id": trip_id, "rider_id": caller.subject_id, **payload},
            # The trip id is chosen here, so a repeated create names the same trip.
            idempotent=True,
        )
        return 201, orjson.dumps(views.trip(reply.body or {}))

    def new_trip_id() -> str:
        return new_id(TRIP, caller.region)

    key = call.request.headers.get("Idempotency-Key")
    if key is None:
        status, raw = await attempt(new_trip_id())
        replayed = False
    else:
        outcome = await call.deps.idempotency.run(
            caller.subject_id, check_key(key), payload, new_trip_id, attempt
        )
        status, raw, replayed = outcome.status, outcome.body, outcome.replayed
    headers = {}
    trip_id = orjson.loads(raw).get("id") if raw else None
    if trip_id:
        headers["Location"] = f"/v1/trips/{trip_id}"
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return web.Response(body=raw, status=status, headers=headers, content_type="application/json")


@api.route(
    "GET",
    "/v1/trips/{id}",
    summary="A trip, with its driver",
    tags="trips",
    roles=ANY_ROLE,
    responses=ok(models.Trip, "The trip."),
    errors=(404, 503, 504),
    description="For the rider who requested it and the driver assigned to it (and "
    "operations); 404 for everyone else. While requested it has `queue_position`. Once a "
    "driver is assigned it has `driver`, fetched from driver_service at the same time as "
    "the trip; if driver_service fails, `driver` is null and `missing: [\"driver\"]`.",
)
async def get_trip(call: Call) -> web.Response:
    trip_id = check_trip_id(call.path("id"))
    upstreams = call.deps.upstreams
    trip_reply, driver_reply = await asyncio.gather(
        upstreams.trips.get(f"/internal/trips/{trip_id}"),
        # Optional: one attempt, so the trip is not held back by its driver.
        upstreams.drivers.get(f"/internal/trips/{trip_id}/driver", retries=0),
        return_exceptions=True,
    )
    if isinstance(trip_reply, BaseException):
        raise trip_reply
    trip = trip_reply.body
    if not isinstance(trip, dict) or not can_see_trip(call.caller, trip):
        raise no_such_trip()
    out = views.trip(trip)
    if trip.get("driver_id"):
        if isinstance(driver_reply, Reply) and isinstance(driver_reply.body, dict):
            out["driver"] = views.trip_driver(driver_reply.body)
        elif isinstance(driver_reply, UpstreamProblem) and driver_reply.status == 404:
            # The driver left the trip between the two reads, or the trip ended
            # and went cold (driver_service reads only hot trips): its driver
            # as they are now.
            if trip.get("status") in TERMINAL_STATUSES:
                found = await _driver_of_cold_trip(call, trip["driver_id"])
                if found is not None:
                    out["driver"] = found
        else:
            if isinstance(driver_reply, BaseException) and not isinstance(driver_reply, Exception):
                raise driver_reply
            logger.warning("trip %s without its driver: %r", trip_id, driver_reply)
            out["driver"] = None
            out["missing"] = ["driver"]
    return json(out)


TERMINAL_STATUSES = ("completed", "cancelled", "expired")


async def _driver_of_cold_trip(call: Call, driver_id: str) -> dict | None:
    try:
        reply = await call.deps.upstreams.drivers.get(
            f"/internal/drivers/{driver_id}", retries=0
        )
    except errors.AppError as exc:
        logger.warning("driver %s of a cold trip: %r", driver_id, exc)
        return None
    body = reply.body if isinstance(reply.body, dict) else {}
    return views.trip_driver({**body, "pickup_eta_s": None}) if body else None


@api.route(
    "GET",
    "/v1/trips",
    summary="The caller's trips",
    tags="trips",
    roles=TRIP_ROLES,
    query=models.TripListQuery,
    responses=ok(models.TripList, "Newest first; a rider's requested trips, a driver's driven."),
    errors=(503, 504),
    description="Newest first (a rider's by request time, a driver's by the time they took "
    "the trip), across the trips still in Redis and those moved to the cold store "
    "`HOT_RETENTION_S` after they ended, with one opaque cursor: the move is invisible.",
)
async def list_trips(call: Call) -> web.Response:
    query: models.TripListQuery = call.query
    caller = call.caller
    params: dict[str, Any] = {"limit": query.limit}
    if query.cursor:
        params["cursor"] = query.cursor
    if caller.role == "rider":
        reply = await call.deps.upstreams.trips.get(
            f"/internal/riders/{caller.subject_id}/trips", params=params
        )
    else:
        # trip_service answers for drivers too: it pages the hot index and the
        # cold store with one cursor.
        reply = await call.deps.upstreams.trips.get(
            f"/internal/drivers/{caller.subject_id}/trips", params=params
        )
    body = reply.body or {}
    return json(
        {
            "items": [views.trip(t) for t in body.get("items", [])],
            "next_cursor": body.get("next_cursor"),
        }
    )


@api.route(
    "POST",
    "/v1/trips/{id}/cancel",
    summary="Cancel a trip (rider) or give it back (assigned driver)",
    tags="trips",
    roles=TRIP_ROLES,
    body=models.CancelRequest,
    body_optional=True,
    responses=ok(models.Trip, "The trip after the cancellation."),
    errors=(404, 409, 503, 504),
    description="By the rider while requested, assigned or arrived: `status: cancelled`, "
    "`cancelled_by: rider`. By the assigned driver while assigned or arrived: the trip "
    "goes back to `requested` with its old place in the queue and is never offered to "
    "that driver again. The body is optional.",
)
async def cancel_trip(call: Call) -> web.Response:
    trip_id = check_trip_id(call.path("id"))
    caller = call.caller
    reason = call.body.reason if call.body is not None else None
    extra = {"reason": reason} if reason else {}
    upstreams = call.deps.upstreams
    if caller.role == "rider":
        reply = await upstreams.trips.call(
            "POST",
            f"/internal/trips/{trip_id}/cancel",
            json={"rider_id": caller.subject_id, **extra},
        )
    else:
        try:
            reply = await upstreams.drivers.call(
                "POST",
                f"/internal/drivers/{caller.subject_id}/trips/{trip_id}/cancel",
                json=extra,
            )
        except UpstreamProblem as problem:
            if problem.status != 409:
                raise
            await driver_holds_or_404(call, trip_id, problem)
    return json(views.trip(reply.body or {}))


@api.route(
    "POST",
    "/v1/trips/{id}/rating",
    summary="Rate a completed trip",
    tags="rider",
    roles=("rider",),
    body=models.RatingRequest,
    responses=ok(models.Trip, "The trip with `rating: {stars, comment, rated_at}`."),
    errors=(404, 409, 503, 504),
    description="The rider of a completed trip, once (409 otherwise), while the trip is "
    "hot: until `HOT_RETENTION_S` (default one day) after it ended. Later it is a 409 "
    "problem of type `/problems/rating-window-closed`: the rating window has closed.",
)
async def rate_trip(call: Call) -> web.Response:
    trip_id = check_trip_id(call.path("id"))
    body: models.RatingRequest = call.body
    payload: dict[str, Any] = {"rider_id": call.caller.subject_id, "stars": body.stars}
    if body.comment is not None:
        payload["comment"] = body.comment
    reply = await call.deps.upstreams.trips.call(
        "POST", f"/internal/trips/{trip_id}/rating", json=payload
    )
    return json(views.trip(reply.body or {}))


@api.route(
    "GET",
    "/v1/trips/{id}/events",
    summary="The trip's events, live (server-sent events)",
    tags="trips",
    roles=ANY_ROLE,
    headers=(
        Header(
            "Last-Event-ID",
            "Resume after this stream entry id: only later events are sent. A value that "
            "is not a stream entry id is ignored (all events are sent).",
            max_length=None,
        ),
    ),
    responses={
        200: Response(
            "One SSE message per event: `id:` the stream entry id, `event:` the type, "
            "`data:` the envelope. Past events come first; the stream ends after a terminal "
            "event (completed, cancelled, expired). A client that falls too far behind is "
            "disconnected and should reconnect with Last-Event-ID. The rider and the "
            "assigned driver get the trip's public story (requested, assigned, "
            "driver_cancelled, driver_arrived, started, completed, cancelled, expired, "
            "rated); offers to drivers, their declines and expiries only ops sees.",
            models.SseMessage,
            content_type="text/event-stream",
        )
    },
    errors=(404, 429, 503, 504),
    description="429 with Retry-After when the session already holds SSE_PER_SESSION live "
    "streams, or the gateway SSE_MAX in total.",
)
async def trip_events(call: Call) -> web.StreamResponse:
    trip_id = check_trip_id(call.path("id"))
    trip = await load_trip(call, trip_id)
    request = call.request
    hub = call.deps.hub
    after = parse_stream_id(request.headers.get("Last-Event-ID"))
    # Subscribe before reading the past, so nothing falls between the two;
    # stream ids drop what both deliver.
    with call.deps.sse_slots.hold(call.caller.token_hash):
        sub = hub.subscribe(trip_id)
        try:
            past = await call.deps.redis.lrange(keys.trip_events(trip_id), 0, -1)
            finished = trip.get("status") in ("completed", "cancelled", "expired")
            if not past and finished:
                past = await _cold_event_items(call, trip_id)
            async with open_stream(call) as stream:
                try:
                    await _send_trip_events(
                        stream, sub, past, after, finished, call.caller.role == "ops"
                    )
                except CLIENT_GONE:
                    logger.debug("SSE client of %s went away", trip_id)
            return stream
        finally:
            hub.unsubscribe(sub)


async def _cold_event_items(call: Call, trip_id: str) -> list[bytes]:
    """A finished trip no longer in Redis: its events from trip_service's
    cold store, in the form of the hot list."""
    reply = await call.deps.upstreams.trips.get(f"/internal/trips/{trip_id}/events")
    items = (reply.body or {}).get("items") or []
    return [orjson.dumps(item) for item in items]


async def _send_trip_events(stream, sub, past: list, after, finished: bool, everything: bool):
    """The past events after `after`, then live ones until a terminal event:
    all of them for ops (`everything`), the trip's public story for its rider
    and driver."""
    sent = after
    for raw in past:
        item = orjson.loads(raw)
        event = item.get("event") or {}
        order = parse_stream_id(item.get("stream_id"))
        if event.get("type") in TERMINAL_TYPES:
            finished = True
        if order is None or (sent is not None and order <= sent):
            continue
        shown = event if everything else views.public_event(event)
        if shown is not None:
            await stream.send(orjson.dumps(shown).decode(), id=item["stream_id"],
                              event=event.get("type"))
        sent = order
    while not finished:
        live = await sub.next()
        if live is DROPPED:
            return
        if sent is not None and live.order <= sent:
            continue
        sent = live.order
        finished = live.type in TERMINAL_TYPES
        if everything:
            await stream.send(live.env, id=live.stream_id, event=live.type)
            continue
        if live.type not in PUBLIC_TRIP_TYPES:
            continue
        env = live.env
        if live.type == "trip.expired":
            env = orjson.dumps(views.public_event(orjson.loads(env))).decode()
        await stream.send(env, id=live.stream_id, event=live.type)


@api.route(
    "GET",
    "/v1/trips/{id}/timeline",
    summary="The events of the trip the caller may see",
    tags="trips",
    roles=ANY_ROLE,
    responses=ok(models.Timeline, "Events in order; for ops each with its deliveries."),
    errors=(404, 503, 504),
    description="Each event with `id, type, occurred_at, producer, trace_id`. The rider "
    "and the assigned driver see the trip's public story (requested, assigned, "
    "driver_cancelled, driver_arrived, started, completed, cancelled, expired, rated). "
    "Ops sees every event, offers to drivers included, each with `deliveries: [{group, "
    "consumer, delivered_at, acked_at, attempts}]`: the lifecycle of the message through "
    "the consumer groups. Same access as GET /v1/trips/{id}.",
)
async def trip_timeline(call: Call) -> web.Response:
    trip_id = check_trip_id(call.path("id"))
    trips = call.deps.upstreams.trips
    # The access check and the timeline at once; the timeline is only
    # returned when the check passed.
    trip, timeline = await asyncio.gather(
        load_trip(call, trip_id),
        trips.get(f"/internal/trips/{trip_id}/timeline"),
        return_exceptions=True,
    )
    for result in (trip, timeline):
        if isinstance(result, BaseException):
            raise result
    body = timeline.body or {}
    return json(
        {
            "trip_id": trip_id,
            "events": views.timeline_events(body.get("events", []), call.caller.role == "ops"),
        }
    )


@api.route(
    "GET",
    "/v1/drivers/nearby",
    summary="Available drivers near a point",
    tags="rider",
    roles=ANY_ROLE,
    query=models.NearbyQuery,
    responses=ok(models.Nearby, "Nearest first, with no identities."),
    errors=(503, 504),
    description="Any signed-in role. A point outside the caller's region is a 422 "
    "(operations may ask about any configured region).",
)
async def nearby_drivers(call: Call) -> web.Response:
    query: models.NearbyQuery = call.query
    settings = call.deps.settings
    caller = call.caller
    if caller.region:
        region = settings.region(caller.region)
        inside = region is not None and region.contains(query.lat, query.lon)
    else:
        region = next((r for r in settings.regions if r.contains(query.lat, query.lon)), None)
        inside = region is not None
    if not inside:
        where = f"region {caller.region!r}" if caller.region else "any configured region"
        message = f"must be inside {where}"
        raise errors.Invalid(
            "The point is outside the service area.",
            errors=[{"field": "lat", "message": message}, {"field": "lon", "message": message}],
        )
    params: dict[str, Any] = {
        "region": region.name,
        "lat": query.lat,
        "lon": query.lon,
        "radius_m": query.radius_m,
    }
    if query.product:
        params["product"] = query.product
    reply = await call.deps.upstreams.drivers.get("/internal/nearby", params=params)
    return json(reply.body or {"count": 0, "drivers": []})
