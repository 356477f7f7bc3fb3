"""trip_service: owns trips, fares, the pending ranking, history."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from common import errors, keys
from common.internal import require_internal_token
from common.redisconn import REDIS, check_redis_ready, redis_ctx
from common.service import serve
from common.streams import StreamConsumer
from common.web import READY_CHECKS, SETTINGS, create_base_app

from .archiver import Archiver, ArchiveScheduler
from .coldstore import COLD_UNAVAILABLE, ColdStore, open_pool
from .handlers import STORE, add_routes
from .settings import TripSettings
from .store import TripStore

logger = logging.getLogger(__name__)

COLD = web.AppKey("cold_store", ColdStore)
ARCHIVER = web.AppKey("archiver", Archiver)
ARCHIVE_TASKS = web.AppKey("archive_tasks", list)
CONSUMER_BATCH = 64
CONSUMER_BLOCK_MS = 1000
STOP_GRACE_S = 5.0


async def cold_ctx(app: web.Application) -> AsyncIterator[None]:
    """The cold store's pool, its schema migrated, when DATABASE_URL is set."""
    settings: TripSettings = app[SETTINGS]
    if not settings.database_url:
        logger.warning("DATABASE_URL is not set: finished trips stay in Redis (no cold store)")
        yield
        return
    pool = await open_pool(settings.database_url)
    app[COLD] = ColdStore(pool)
    try:
        yield
    finally:
        await pool.close()


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    """The scripts are registered on the process's pool (loaded on demand)."""
    app[STORE] = TripStore(app[REDIS], app[SETTINGS], app.get(COLD))
    yield


async def archive_ctx(app: web.Application) -> AsyncIterator[None]:
    """The `archive` consumer group (one consumer per region) and the
    archiver loop; stopped gracefully, cancelled past a grace period."""
    settings: TripSettings = app[SETTINGS]
    if COLD not in app:
        app[ARCHIVE_TASKS] = []
        yield
        return
    redis = app[REDIS]
    scheduler = ArchiveScheduler(redis, settings)
    workers: list = [
        StreamConsumer(
            redis, keys.events(region.name), keys.GROUP_ARCHIVE,
            f"{settings.consumer_name}-{keys.GROUP_ARCHIVE}", scheduler.handle,
            batch=CONSUMER_BATCH, block_ms=CONSUMER_BLOCK_MS,
            claim_idle_ms=settings.claim_idle_ms, max_deliveries=settings.max_deliveries,
            # Its deliveries are not part of a trip's story, and would cost
            # memory on every event.
            record_deliveries=False,
        )
        for region in settings.regions
    ]
    app[ARCHIVER] = Archiver(redis, app[STORE].scripts, app[COLD], settings)
    workers.append(app[ARCHIVER])
    tasks = [asyncio.create_task(w.run(), name=f"archive-{i}") for i, w in enumerate(workers)]
    app[ARCHIVE_TASKS] = tasks
    try:
        yield
    finally:
        for w in workers:
            w.stop()
        done, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                logger.error("%s had failed", task.get_name(), exc_info=task.exception())


@web.middleware
async def cold_errors(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except COLD_UNAVAILABLE as exc:
        logger.warning("cold store unavailable: %r", exc)
        raise errors.Unavailable(
            "The trip history store is not reachable; retry shortly.",
            headers={"Retry-After": "1"},
        ) from None


def create_app(settings: TripSettings) -> web.Application:
    app = create_base_app(settings)
    # Only the gateway may call: refuses to build without INTERNAL_TOKEN.
    app.middlewares.append(require_internal_token(settings))
    app.middlewares.append(cold_errors)
    app.cleanup_ctx.append(redis_ctx(settings))
    app.cleanup_ctx.append(cold_ctx)
    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(archive_ctx)
    add_routes(app)

    async def redis_ready() -> None:
        await check_redis_ready(app[REDIS])

    async def archive_alive() -> None:
        dead = [t.get_name() for t in app[ARCHIVE_TASKS] if t.done()]
        if dead:
            raise RuntimeError(f"stopped: {', '.join(dead)}")

    async def redis_memory() -> None:
        used, limit, _ = await app[STORE].memory()
        if limit and used >= limit:
            # Writes are refused (503) until the archiver or a larger limit frees it.
            raise RuntimeError(f"redis is full: {used} of {limit} bytes used")

    app[READY_CHECKS]["redis"] = redis_ready
    # The admin has loaded this version of the functions (common/scripts.py).
    app[READY_CHECKS]["functions"] = lambda: app[STORE].scripts.check()
    app[READY_CHECKS]["redis_memory"] = redis_memory
    if settings.database_url:
        # Not the cold store itself: with PostgreSQL down, trips in flight and
        # everything hot are still served (cold reads are 503 meanwhile, the
        # archiver waits); the overview's `storage.cold_store` says it is down.
        app[READY_CHECKS]["archiver"] = archive_alive
    return app


def main() -> None:
    serve(TripSettings, create_app)
