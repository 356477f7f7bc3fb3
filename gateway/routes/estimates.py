"""Fare estimates: every product's fare, surge and pickup ETA for a ride."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from .. import models
from ..api import Api, Call
from ..upstream import Reply
from .shared import json, ok

logger = logging.getLogger(__name__)

api = Api()


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
