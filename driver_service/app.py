"""driver_service: owns drivers, locations, offers and the dispatcher."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from common import keys
from common.internal import require_internal_token
from common.redisconn import REDIS, check_redis_ready, create_redis, redis_ctx
from common.scripts import check_library
from common.service import serve
from common.streams import LIBRARY as STREAMS_LIBRARY
from common.streams import StreamConsumer
from common.web import READY_CHECKS, SETTINGS, create_base_app

from .dispatcher import Dispatcher
from .dispatcher import ordered_by as dispatch_order
from .handlers import POLLER, STORE, add_routes
from .maintenance import TRIM_INTERVAL_S, StreamMaintenance
from .offers import BLOCKING_POOL_SIZE, BLOCKING_SOCKET_TIMEOUT_S, OfferPoller
from .ratings import RatingConsumer
from .settings import DriverSettings
from .store import DriverStore
from .sweeper import Sweeper
from .tasks import TASKS, check_alive, worker_ctx

# Short enough that shutdown (which waits for the read in hand) is quick.
CONSUMER_BLOCK_MS = 250
CONSUMER_BATCH = 64


@dataclass(frozen=True, slots=True)
class Workers:
    """Which background workers run (tests turn some off to drive them by hand)."""

    dispatch: bool = True
    driver_stats: bool = True
    sweeper: bool = True
    maintenance: bool = True


DISPATCHER = web.AppKey("dispatcher", Dispatcher)
DISPATCH_CONSUMERS = web.AppKey("dispatch_consumers", list)
STATS_CONSUMERS = web.AppKey("stats_consumers", list)
SWEEPER = web.AppKey("sweeper", Sweeper)
MAINTENANCE = web.AppKey("maintenance", StreamMaintenance)


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    app[STORE] = store = DriverStore(app[REDIS], settings)
    app[DISPATCHER] = Dispatcher(store, settings)
    yield


async def blocking_ctx(app: web.Application) -> AsyncIterator[None]:
    """A separate pool for long polls: its socket timeout exceeds any wait."""
    blocking = create_redis(
        app[SETTINGS].redis_url,
        max_connections=BLOCKING_POOL_SIZE,
        socket_timeout=BLOCKING_SOCKET_TIMEOUT_S,
    )
    app[POLLER] = OfferPoller(app[STORE], blocking)
    yield
    await blocking.aclose()


def _consumers(app: web.Application, group: str, handler,
               ordered_by=None) -> list[StreamConsumer]:
    settings: DriverSettings = app[SETTINGS]
    return [
        StreamConsumer(
            app[REDIS],
            keys.events(region.name),
            group,
            f"{settings.consumer_name}-{group}",
            handler,
            batch=CONSUMER_BATCH,
            block_ms=CONSUMER_BLOCK_MS,
            claim_idle_ms=settings.claim_idle_ms,
            max_deliveries=settings.max_deliveries,
            ordered_by=ordered_by,
        )
        for region in settings.regions
    ]


def _dispatch_workers(app: web.Application) -> list:
    # Entries of different trips and drivers are handled at once: their
    # offers share the server's fsyncs instead of each waiting its own.
    app[DISPATCH_CONSUMERS] = _consumers(app, keys.GROUP_DISPATCH, app[DISPATCHER].handle,
                                         ordered_by=dispatch_order)
    return app[DISPATCH_CONSUMERS]


def _stats_workers(app: web.Application) -> list:
    app[STATS_CONSUMERS] = _consumers(
        app, keys.GROUP_DRIVER_STATS, RatingConsumer(app[STORE]).handle
    )
    return app[STATS_CONSUMERS]


def _sweeper_workers(app: web.Application) -> list:
    app[SWEEPER] = Sweeper(app[STORE], app[DISPATCHER], app[SETTINGS])
    return [app[SWEEPER]]


def _maintenance_workers(app: web.Application) -> list:
    settings: DriverSettings = app[SETTINGS]
    retention_ms = int(settings.stream_retention_s * 1000)
    app[MAINTENANCE] = StreamMaintenance(
        app[REDIS], settings, retention_ms=retention_ms,
        # A short retention (a soak) is kept by trimming as often.
        trim_interval_s=min(TRIM_INTERVAL_S, max(settings.stream_retention_s / 4, 1.0)),
    )
    return [app[MAINTENANCE]]


def create_app(settings: DriverSettings, workers: Workers = Workers()) -> web.Application:
    app = create_base_app(settings)
    # Only the gateway may call: refuses to build without INTERNAL_TOKEN.
    app.middlewares.append(require_internal_token(settings))
    app[TASKS] = {}
    app.cleanup_ctx.append(redis_ctx(settings))
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(blocking_ctx)
    if workers.dispatch:
        app.cleanup_ctx.append(worker_ctx("dispatch", _dispatch_workers))
    if workers.driver_stats:
        app.cleanup_ctx.append(worker_ctx("driver-stats", _stats_workers))
    if workers.sweeper:
        app.cleanup_ctx.append(worker_ctx("sweeper", _sweeper_workers))
    if workers.maintenance:
        app.cleanup_ctx.append(worker_ctx("stream-maintenance", _maintenance_workers))
    add_routes(app)

    async def redis_ready() -> None:
        await check_redis_ready(app[REDIS])

    app[READY_CHECKS]["redis"] = redis_ready

    async def functions_ready() -> None:
        # The admin has loaded this version of the functions (common/scripts.py).
        await app[STORE].scripts.check()
        await check_library(app[REDIS], STREAMS_LIBRARY)

    app[READY_CHECKS]["functions"] = functions_ready
    app[READY_CHECKS]["workers"] = check_alive(app)
    return app


def main() -> None:
    serve(DriverSettings, create_app)
