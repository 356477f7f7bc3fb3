"""Trips: request one, read it, list the caller's, cancel, rate."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiohttp import web

from common import errors
from common.ids import TRIP, new_id

from .. import models, serializers
from ..api import ANY_ROLE, Api, Call, Header, Response
from ..idempotency import IDEMPOTENCY_KEY_PATTERN, check_key
from ..upstream import Reply, UpstreamProblem
from .shared import (
    can_see_trip,
    check_trip_id,
    driver_holds_or_404,
    json,
    no_such_trip,
    ok,
)

logger = logging.getLogger(__name__)

api = Api()

TRIP_ROLES = ("rider", "driver")


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
        return 201, orjson.dumps(serializers.trip(reply.body or {}))

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
    out = serializers.trip(trip)
    if trip.get("driver_id"):
        if isinstance(driver_reply, Reply) and isinstance(driver_reply.body, dict):
            out["driver"] = serializers.trip_driver(driver_reply.body)
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
    return serializers.trip_driver({**body, "pickup_eta_s": None}) if body else None


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
            "items": [serializers.trip(t) for t in body.get("items", [])],
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
    return json(serializers.trip(reply.body or {}))


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
    return json(serializers.trip(reply.body or {}))
