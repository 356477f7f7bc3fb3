"""Helpers shared by the route modules: the documented answers and the
object-level checks every route taking an id performs."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from common import errors
from common.ids import TRIP, is_id
from common.web import json_response

from ..api import Call, Response
from ..identity import Principal

def ok(model, description: str = "OK") -> dict[int, Response]:
    return {200: Response(description, model)}


def no_such_trip() -> errors.NotFound:
    return errors.NotFound("No such trip.")


def check_trip_id(trip_id: str) -> str:
    """A malformed id names no trip: 404 without asking anyone."""
    if not is_id(trip_id, TRIP):
        raise no_such_trip()
    return trip_id


def can_see_trip(principal: Principal, trip: dict[str, Any]) -> bool:
    """The rider who requested it, the driver assigned to it, and operations."""
    if principal.role == "ops":
        return True
    if principal.role == "rider":
        return trip.get("rider_id") == principal.subject_id
    if principal.role == "driver":
        return bool(trip.get("driver_id")) and trip.get("driver_id") == principal.subject_id
    return False


async def load_trip(call: Call, trip_id: str) -> dict[str, Any]:
    """The trip document, or 404 if it does not exist or is not the caller's."""
    check_trip_id(trip_id)
    reply = await call.deps.upstreams.trips.get(f"/internal/trips/{trip_id}")
    trip = reply.body
    if not isinstance(trip, dict) or not can_see_trip(call.caller, trip):
        raise no_such_trip()
    return trip


async def driver_holds_or_404(call: Call, trip_id: str, problem: Exception) -> None:
    """After driver_service refused a driver-side transition with 409: the
    caller hears about the trip's state only if it is their trip (they are
    its driver). To a driver who declined it, let its offer lapse or gave it
    back, it belongs to someone else: 404, as if it did not exist."""
    try:
        reply = await call.deps.upstreams.trips.get(f"/internal/trips/{trip_id}")
    except errors.AppError:
        raise problem from None
    trip = reply.body if isinstance(reply.body, dict) else {}
    if trip.get("driver_id") != call.caller.subject_id:
        raise no_such_trip() from None
    raise problem


def json(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return json_response(data, status=status, headers=headers)


def empty(status: int = 204) -> web.Response:
    return web.Response(status=status)

