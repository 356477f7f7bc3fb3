"""Available drivers near a point, without their identities."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from common import errors

from .. import models
from ..api import ANY_ROLE, Api, Call
from .shared import json, ok

api = Api()


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
