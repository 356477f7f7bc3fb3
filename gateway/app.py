"""gateway: the public API (docs/api.md, /openapi.json)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import Gauge

from common import errors, keys, metrics
from common.admission import Admission
from common.internal import auth_headers as internal_auth_headers
from common.redisconn import REDIS, check_redis_ready, redis_ctx
from common.service import serve
from common.streams import group_stats
from common.web import (
    READY_CHECKS,
    SETTINGS,
    create_base_app,
    json_response,
    problem_response,
    security_headers,
)

from .api import authenticate
from .clientaddr import ClientAddress
from .config import GatewaySettings
from .passwords import OPS_MIN_LENGTH, ops_password_problem
from .idempotency import Idempotency
from .identity import Identity
from .passwords import Hasher
from .history import HISTORY, History, history_ctx
from .limits import LongPolls, SseSlots
from .live import EventHub, hub_ctx
from .ratelimit import RateLimiter
from .routes import setup_routes
from .scripts import GatewayScripts
from .deps import HANDLER_DEPS, HandlerDeps
from .topology import TopologyWatcher, topology_ctx
from .upstream import Upstream, Upstreams, upstreams_ctx

logger = logging.getLogger(__name__)

DEAD_LETTER_BACKLOG = Gauge(
    "dead_letter_stream_length", "Entries in a region's dead-letter stream", ["stream"]
)
METRICS_REFRESH_TIMEOUT_S = 1.0


def handler_deps_ctx(settings: GatewaySettings, upstreams: Upstreams):
    """Identity, limits, idempotency and the event hub on the process's Redis pool."""

    client_addr = ClientAddress(settings.trusted_proxies)  # a bad entry stops the start

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        redis = app[REDIS]
        scripts = GatewayScripts(redis)
        hasher = Hasher(settings)
        identity = Identity(redis, scripts, hasher, settings)
        lease_s = max(10.0, settings.upstream_timeout_s * (settings.upstream_retries + 2))
        deps = HandlerDeps(
            settings=settings,
            redis=redis,
            identity=identity,
            limiter=RateLimiter(scripts, settings),
            idempotency=Idempotency(scripts, settings, lease_s, settings.wait_replicas),
            upstreams=upstreams,
            hub=EventHub(redis, settings),
            long_polls=LongPolls(settings),
            sse_slots=SseSlots(settings),
            client_addr=client_addr,
        )
        app[HANDLER_DEPS] = deps
        try:
            if settings.ops_user_name and settings.ops_password:
                await identity.ensure_ops(settings.ops_user_name, settings.ops_password)
            else:
                logger.warning("OPS_USER_NAME/OPS_PASSWORD unset: no ops account")
            yield
        finally:
            hasher.close()

    return ctx


# Retries of a Redis command that failed or timed out (redis-py's default
# policy here is two, which triples the time a hung Redis costs).
REDIS_RETRIES = 1


def gateway_redis_ctx(settings: GatewaySettings):
    """The process's Redis pool, with the gateway's bounded command timeout."""
    timeout = max(settings.redis_timeout_s, settings.stream_block_ms / 1000 + 1.0)
    return redis_ctx(settings, socket_timeout=timeout, retries=REDIS_RETRIES)


def _hub_ctx(app: web.Application):
    hub = app[HANDLER_DEPS].hub
    hub.observers.append(app[HISTORY].observe)
    return hub_ctx(hub)(app)


async def refresh_stream_gauges(app: web.Application) -> None:
    """Consumer-group lag, pending counts and dead letters, read at scrape time."""
    redis = app[REDIS]
    for region in app[HANDLER_DEPS].settings.regions:
        stream = keys.events(region.name)
        for group in await group_stats(redis, stream):
            metrics.CONSUMER_LAG.labels(stream, group["group"]).set(group["lag"] or 0)
            metrics.CONSUMER_PENDING.labels(stream, group["group"]).set(group["pending"])
        dead = keys.dead_letters(region.name)
        DEAD_LETTER_BACKLOG.labels(dead).set(await redis.xlen(dead))


OPERATIONS_PATHS = ("/metrics", "/readyz", "/healthz")
# Neither counted nor shed by the in-flight limit: routes that wait by design
# (the offers long poll, the live event streams; bounded by LONG_POLLS_MAX,
# SSE_MAX) and the ops views, which must answer while the system is overloaded.
UNMETERED_ROUTES = ("/v1/driver/offers/next", "/v1/trips/{id}/events")
UNMETERED_PREFIXES = ("/v1/ops/",)


def _local_port(request: web.Request) -> int | None:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    return sockname[1] if sockname else None


async def _refresh_gauges(request: web.Request) -> None:
    # /metrics is the base app's route; the stream gauges are fresh when scraped.
    if request.path == "/metrics" and HANDLER_DEPS in request.app:
        try:
            await asyncio.wait_for(refresh_stream_gauges(request.app), METRICS_REFRESH_TIMEOUT_S)
        except Exception as exc:  # scrape what is there even with Redis down
            logger.warning("stream gauges not refreshed: %r", exc)


@web.middleware
async def operations_only(request: web.Request, handler):
    """/metrics (what the system is doing, and a Redis query per scrape) is for
    the ops role; /readyz answers anyone with its status (the probes and
    load balancers need no more) and names what is down to the ops role only.
    The operations listener (OPS_PORT), which the deployment keeps off the
    public network, serves these three in full without a login (so they work
    with Redis down too) and nothing else. Every other request passes through
    after two comparisons (one middleware, on the hot path of every route)."""
    ops_port = request.app[SETTINGS].ops_port
    if ops_port and _local_port(request) == ops_port:
        if request.path not in OPERATIONS_PATHS:
            raise errors.NotFound("The operations listener serves /metrics, /readyz, /healthz.")
        await _refresh_gauges(request)
        return await handler(request)
    if request.path not in ("/metrics", "/readyz") or HANDLER_DEPS not in request.app:
        return await handler(request)
    is_ops = False
    if request.headers.get("Authorization") or request.path == "/metrics":
        principal = await authenticate(request, request.app[HANDLER_DEPS])
        is_ops = principal.role == "ops"
        if not is_ops and request.path == "/metrics":
            raise errors.Forbidden("Metrics are for the ops role.")
    await _refresh_gauges(request)
    response = await handler(request)
    if request.path == "/readyz" and not is_ops:
        if response.status == 200:
            return json_response({"status": "ready"})
        return problem_response(
            response.status, "Not ready", "A dependency is down.",
            type_="/problems/not-ready", headers={"Retry-After": "1"},
        )
    return response


class OpsPasswordRefused(SystemExit):
    """The gateway does not start with a weak or placeholder ops password."""


def check_ops_account(settings: GatewaySettings) -> None:
    if not settings.ops_password:
        return
    problem = ops_password_problem(settings.ops_password, settings.ops_user_name)
    if problem:
        raise OpsPasswordRefused(
            f"gateway: OPS_PASSWORD {problem}; set a random one of at least "
            f"{OPS_MIN_LENGTH} characters (e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(24))')."
        )


def create_app(settings: GatewaySettings) -> web.Application:
    check_ops_account(settings)
    admission = Admission(settings.service, settings.max_in_flight,
                          settings.admission_delay_ms / 1000, exempt=UNMETERED_ROUTES, exempt_prefixes=UNMETERED_PREFIXES)
    app = create_base_app(settings, admission)
    app.on_response_prepare.append(security_headers)
    app.middlewares.append(operations_only)
    auth = internal_auth_headers(settings)
    drivers = Upstream(
        "driver_service", settings.driver_service_url, settings.upstream_timeout_s, settings,
        headers=auth,
    )
    upstreams = Upstreams(
        trips=Upstream(
            "trip_service", settings.trip_service_url, settings.upstream_timeout_s, settings,
            headers=auth,
        ),
        drivers=drivers,
        driver_polls=Upstream(
            "driver_service", settings.driver_service_url, settings.upstream_timeout_s, settings,
            connections=settings.long_polls_max or settings.upstream_connections,
            breaker=drivers.breaker,
            headers=auth,
        ),
    )
    app.cleanup_ctx.append(gateway_redis_ctx(settings))
    app.cleanup_ctx.append(upstreams_ctx(upstreams))
    app.cleanup_ctx.append(handler_deps_ctx(settings, upstreams))
    app.cleanup_ctx.append(history_ctx(History()))
    app.cleanup_ctx.append(_hub_ctx)
    app.cleanup_ctx.append(topology_ctx(TopologyWatcher(
        settings.redis_url, [r.name for r in settings.regions],
        poll_s=settings.topology_poll_s, timeout_s=settings.topology_timeout_s,
    )))
    setup_routes(app, settings)

    async def redis_ready() -> None:
        await check_redis_ready(app[REDIS])

    app[READY_CHECKS]["redis"] = redis_ready
    # The admin has loaded this version of the functions (common/scripts.py).
    app[READY_CHECKS]["functions"] = lambda: GatewayScripts(app[REDIS]).check()
    app[READY_CHECKS]["trip_service"] = upstreams.trips.probe
    app[READY_CHECKS]["driver_service"] = upstreams.drivers.probe
    app[READY_CHECKS]["live_events"] = lambda: app[HANDLER_DEPS].hub.check()
    return app


def main() -> None:
    serve(GatewaySettings, create_app)
