"""The health routes, declared for the document: the base app (common.web)
serves /healthz, /readyz and /metrics itself."""

from __future__ import annotations

from aiohttp import web

from common.web import healthz, metrics_handler, readyz

from .. import models
from ..api import Api, Call, Response
from .shared import ok

api = Api()


@api.route(
    "GET",
    "/healthz",
    summary="Liveness",
    tags="operations",
    roles=None,
    responses=ok(models.Health, "The process runs."),
    in_schema=True,
    installed=False,
)
async def get_healthz(call: Call) -> web.Response:
    return await healthz(call.request)


@api.route(
    "GET",
    "/readyz",
    summary="Readiness: Redis and both services",
    tags="operations",
    roles=None,
    responses={
        200: Response("Every dependency answers.", models.Ready),
        503: Response(
            "A dependency is down; `checks` names it to the ops role (problem+json).",
            models.Problem,
            content_type="application/problem+json",
        ),
    },
    description="Anyone gets the status; a session of the ops role (or any request on the "
    "operations listener, OPS_PORT, which a deployment keeps off the public network) gets "
    "`checks` too, naming what is down.",
    installed=False,
)
async def get_readyz(call: Call) -> web.Response:
    return await readyz(call.request)


@api.route(
    "GET",
    "/metrics",
    summary="Prometheus metrics",
    tags="operations",
    roles=("ops",),
    responses={200: Response("Prometheus text format.", None, "text/plain")},
    errors=(401, 403),
    description="The ops role, or any request on the operations listener (OPS_PORT, kept "
    "off the public network: where a scraper reads it). Requests by route and status, "
    "latency histograms, upstream errors and latency, circuit-breaker state, SSE clients, "
    "events seen, consumer-group lag and pending counts, dead letters.",
    installed=False,
)
async def get_metrics(call: Call) -> web.Response:
    return await metrics_handler(call.request)
