"""Driver routes."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from common import errors

from .. import models, serializers
from ..api import Api, Call, Response
from ..upstream import UpstreamProblem
from .shared import check_trip_id, driver_holds_or_404, empty, json, ok

api = Api()

DRIVER = ("driver",)


@api.route(
    "POST",
    "/v1/driver/status",
    summary="Go online or offline",
    tags="driver",
    roles=DRIVER,
    body=models.DriverStatusRequest,
    responses=ok(models.DriverProfile, "The driver's profile (as GET /v1/me)."),
    errors=(409, 503, 504),
    description="Going offline during an active trip is 409; going offline with an open "
    "offer declines it.",
)
async def post_driver_status(call: Call) -> web.Response:
    body: models.DriverStatusRequest = call.body
    driver_id = call.caller.subject_id
    reply = await call.deps.upstreams.drivers.call(
        "POST",
        f"/internal/drivers/{driver_id}/status",
        json={"status": body.status},
        idempotent=True,
    )
    profile = await call.deps.identity.profile(driver_id)
    if profile is None:
        raise errors.NotFound("The account's profile no longer exists.")
    return json(serializers.driver_profile(profile, reply.body or {}))


@api.route(
    "PUT",
    "/v1/driver/location",
    summary="Report the driver's location",
    tags="driver",
    roles=DRIVER,
    body=models.LocationUpdate,
    responses={204: Response("Stored.", None, content_type="")},
    errors=(503, 504),
    description="A location outside the driver's region is a 422.",
)
async def put_driver_location(call: Call) -> web.Response:
    body: models.LocationUpdate = call.body
    caller = call.caller
    region = call.deps.settings.region(caller.region)
    if region is None or not region.contains(body.lat, body.lon):
        message = f"must be inside the service area of region {caller.region!r}"
        raise errors.Invalid(
            "The location is outside the driver's region.",
            errors=[{"field": "lat", "message": message}, {"field": "lon", "message": message}],
        )
    await call.deps.upstreams.drivers.call(
        "PUT",
        f"/internal/drivers/{caller.subject_id}/location",
        json=body.model_dump(exclude_none=True),
    )
    return empty()


@api.route(
    "GET",
    "/v1/driver/offers/next",
    summary="Wait for the next offer (long poll)",
    tags="driver",
    roles=DRIVER,
    query=models.OffersQuery,
    responses={
        200: Response("An offer.", models.Offer),
        204: Response("No offer arrived within `wait` seconds.", None, content_type=""),
    },
    errors=(429, 503, 504),
    description="A driver has one open poll: a new poll ends the previous one, which "
    "answers 204. 429 with Retry-After when the gateway holds its maximum of open polls "
    "(LONG_POLLS_MAX).",
)
async def next_offer(call: Call) -> web.Response:
    query: models.OffersQuery = call.query
    polls = call.deps.upstreams.polls
    with call.deps.long_polls.hold(call.caller.subject_id) as superseded:
        asking = asyncio.ensure_future(
            polls.call(
                "GET",
                f"/internal/drivers/{call.caller.subject_id}/offers/next",
                params={"wait": query.wait},
                # Taking an offer off the queue is not repeatable: never retried.
                idempotent=False,
                timeout_s=query.wait + polls.timeout_s,
            )
        )
        try:
            await asyncio.wait((superseded, asking), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not asking.done():
                # Ended by the driver's next poll (or the client left): the
                # open offer stays on the driver's document for the next poll.
                asking.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asking
        if asking.cancelled():
            return empty()
        reply = asking.result()
    if reply.status == 204 or not reply.body:
        return empty()
    return json(serializers.offer(reply.body))


@api.route(
    "POST",
    "/v1/driver/offers/{trip_id}/accept",
    summary="Accept an offer",
    tags="driver",
    roles=DRIVER,
    responses=ok(models.Trip, "The trip, `status: assigned`."),
    errors=(404, 409, 503, 504),
    description="409 if the offer to this driver expired (at or after `expires_at`) or the "
    "trip was cancelled meanwhile; 404 for a trip never offered to this driver. Exactly "
    "one driver wins a trip; the "
    "winner repeating the accept gets 200 again.",
)
async def accept_offer(call: Call) -> web.Response:
    trip_id = check_trip_id(call.path("trip_id"))
    # A trip never offered to this driver is a 404 (driver_service's accept).
    reply = await call.deps.upstreams.drivers.call(
        "POST",
        f"/internal/drivers/{call.caller.subject_id}/offers/{trip_id}/accept",
        # Repeating an accept answers the same (API: the winner gets 200 again).
        idempotent=True,
    )
    return json(serializers.trip(reply.body or {}))


@api.route(
    "POST",
    "/v1/driver/offers/{trip_id}/decline",
    summary="Decline an offer",
    tags="driver",
    roles=DRIVER,
    responses={204: Response("Declined; the trip goes to the next driver.", None, content_type="")},
    errors=(404, 409, 503, 504),
)
async def decline_offer(call: Call) -> web.Response:
    trip_id = check_trip_id(call.path("trip_id"))
    await call.deps.upstreams.drivers.call(
        "POST", f"/internal/drivers/{call.caller.subject_id}/offers/{trip_id}/decline"
    )
    return empty()


def _transition(action: str, summary: str, result: str):
    async def handler(call: Call) -> web.Response:
        trip_id = check_trip_id(call.path("id"))
        try:
            reply = await call.deps.upstreams.drivers.call(
                "POST", f"/internal/drivers/{call.caller.subject_id}/trips/{trip_id}/{action}"
            )
        except UpstreamProblem as problem:
            if problem.status != 409:
                raise
            await driver_holds_or_404(call, trip_id, problem)
        return json(serializers.trip(reply.body or {}))

    handler.__name__ = f"{action}_trip"
    handler.__doc__ = f"{summary}: the assigned driver only; {result}"
    api.route(
        "POST",
        f"/v1/trips/{{id}}/{action}",
        summary=summary,
        tags="driver",
        roles=DRIVER,
        responses=ok(models.Trip, result),
        errors=(404, 409, 503, 504),
    )(handler)
    return handler


arrive_trip = _transition("arrive", "Arrived at the pickup", "`status: arrived`.")
start_trip = _transition("start", "Start the ride", "`status: in_progress`.")
complete_trip = _transition(
    "complete",
    "Complete the ride",
    "`status: completed` with the final `fare`; the driver is available again.",
)


@api.route(
    "GET",
    "/v1/driver/trip",
    summary="The driver's active trip",
    tags="driver",
    roles=DRIVER,
    responses={
        200: Response("The active trip.", models.Trip),
        204: Response("No active trip.", None, content_type=""),
    },
    errors=(503, 504),
)
async def current_trip(call: Call) -> web.Response:
    reply = await call.deps.upstreams.drivers.get(
        f"/internal/drivers/{call.caller.subject_id}/trip"
    )
    if reply.status == 204 or not reply.body:
        return empty()
    return json(serializers.trip(reply.body))

