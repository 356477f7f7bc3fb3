"""GET /v1/ops/history: the current run minute by minute, for the dashboard."""

from __future__ import annotations

from aiohttp import web

from .. import models
from ..api import Api, Call
from ..history import HISTORY
from .shared import json, ok

api = Api()


@api.route(
    "GET",
    "/v1/ops/history",
    summary="The current run, minute by minute",
    tags="operations",
    roles=("ops",),
    responses=ok(models.OpsHistory, "Trips by outcome, latency, fares, events/s, API routes."),
    description="Since this gateway started (`since`): per minute over the last hour, trips "
    "requested, assigned, completed, cancelled and expired, request-to-assigned p50/p95, the "
    "mean fare and surge; events per second every 10 s; this gateway's own routes over the "
    "last five minutes (requests, 5xx, 4xx, p50/p95). Held in this process's memory: every "
    "gateway reads every event, so each tells the same story of trips; a restart begins a "
    "new run.",
)
async def ops_history(call: Call) -> web.Response:
    return json(call.request.app[HISTORY].snapshot())
