"""gateway: the public API (docs/api.md, /openapi.json)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import Gauge

from common import keys, metrics
from common.redisconn import REDIS, check_redis_ready, redis_ctx
from common.service import serve
from common.settings import Settings
from common.streams import group_stats
from common.web import READY_CHECKS, create_base_app

from .config import GatewayConfig
from .idempotency import Idempotency
from .identity import Hasher, Identity
from .live import EventHub, hub_ctx
from .ratelimit import RateLimiter
from .routes import api
from .routes.ops import OPENAPI_DOC, render_openapi
from .scripts import GatewayScripts
from .services import SERVICES, Services
from .topology import TopologyWatcher, topology_ctx
from .upstream import Upstream, Upstreams, upstreams_ctx
from .openapi import build as build_openapi

logger = logging.getLogger(__name__)

DEAD_LETTER_BACKLOG = Gauge(
    "dead_letter_stream_length", "Entries in a region's dead-letter stream", ["stream"]
)
METRICS_REFRESH_TIMEOUT_S = 1.0


def services_ctx(settings: Settings, config: GatewayConfig, upstreams: Upstreams):
    """Identity, limits, idempotency and the event hub on the process's Redis pool."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        redis = app[REDIS]
        scripts = GatewayScripts(redis)
        hasher = Hasher(config)
        identity = Identity(redis, scripts, hasher, settings)
        lease_s = max(10.0, settings.upstream_timeout_s * (config.upstream_retries + 2))
        services = Services(
            settings=settings,
            config=config,
            redis=redis,
            identity=identity,
            limiter=RateLimiter(scripts, settings, config),
            idempotency=Idempotency(scripts, config, lease_s, settings.wait_replicas),
            upstreams=upstreams,
            hub=EventHub(redis, settings, config),
        )
        app[SERVICES] = services
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


def gateway_redis_ctx(settings: Settings, config: GatewayConfig):
    """The process's Redis pool, with the gateway's bounded command timeout."""
    timeout = max(config.redis_timeout_s, config.stream_block_ms / 1000 + 1.0)
    return redis_ctx(settings, socket_timeout=timeout, retries=REDIS_RETRIES)


def _hub_ctx(app: web.Application):
    return hub_ctx(app[SERVICES].hub)(app)


async def refresh_stream_gauges(app: web.Application) -> None:
    """Consumer-group lag, pending counts and dead letters, read at scrape time."""
    redis = app[REDIS]
    for region in app[SERVICES].settings.regions:
        stream = keys.events(region.name)
        for group in await group_stats(redis, stream):
            metrics.CONSUMER_LAG.labels(stream, group["group"]).set(group["lag"] or 0)
            metrics.CONSUMER_PENDING.labels(stream, group["group"]).set(group["pending"])
        dead = keys.dead_letters(region.name)
        DEAD_LETTER_BACKLOG.labels(dead).set(await redis.xlen(dead))


@web.middleware
async def metrics_refresh(request: web.Request, handler):
    # /metrics is the base app's route; the stream gauges are fresh when scraped.
    if request.path == "/metrics" and SERVICES in request.app:
        try:
            await asyncio.wait_for(refresh_stream_gauges(request.app), METRICS_REFRESH_TIMEOUT_S)
        except Exception as exc:  # scrape what is there even with Redis down
            logger.warning("stream gauges not refreshed: %r", exc)
    return await handler(request)


def create_app(settings: Settings, config: GatewayConfig | None = None) -> web.Application:
    config = config or GatewayConfig()
    app = create_base_app(settings)
    app.middlewares.append(metrics_refresh)
    upstreams = Upstreams(
        trips=Upstream("trip_service", settings.trip_service_url, settings.upstream_timeout_s, config),
        drivers=Upstream(
            "driver_service", settings.driver_service_url, settings.upstream_timeout_s, config
        ),
    )
    app.cleanup_ctx.append(gateway_redis_ctx(settings, config))
    app.cleanup_ctx.append(upstreams_ctx(upstreams))
    app.cleanup_ctx.append(services_ctx(settings, config, upstreams))
    app.cleanup_ctx.append(_hub_ctx)
    app.cleanup_ctx.append(topology_ctx(TopologyWatcher(
        settings.redis_url, [r.name for r in settings.regions],
        poll_s=config.topology_poll_s, timeout_s=config.topology_timeout_s,
    )))
    api.install(app)
    app[OPENAPI_DOC] = render_openapi(build_openapi(api, settings))

    async def redis_ready() -> None:
        await check_redis_ready(app[REDIS])

    app[READY_CHECKS]["redis"] = redis_ready
    app[READY_CHECKS]["trip_service"] = upstreams.trips.probe
    app[READY_CHECKS]["driver_service"] = upstreams.drivers.probe
    app[READY_CHECKS]["live_events"] = lambda: app[SERVICES].hub.check()
    return app


def main() -> None:
    config = GatewayConfig.from_env()
    serve("gateway", lambda settings: create_app(settings, config))
