"""trip_service: owns trips, fares, the pending ranking, history."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from common.redisconn import REDIS, redis_ctx
from common.internal import require_internal_token
from common.service import serve
from common.settings import Settings
from common.web import READY_CHECKS, SETTINGS, create_base_app

from .handlers import STORE, add_routes
from .store import TripStore


async def store_ctx(app: web.Application) -> AsyncIterator[None]:
    """The scripts are registered on the process's pool (loaded on demand)."""
    app[STORE] = TripStore(app[REDIS], app[SETTINGS])
    yield


def create_app(settings: Settings) -> web.Application:
    app = create_base_app(settings)
    # Only the gateway may call: refuses to build without INTERNAL_TOKEN.
    app.middlewares.append(require_internal_token(settings))
    app.cleanup_ctx.append(redis_ctx(settings))
    app.cleanup_ctx.append(store_ctx)
    add_routes(app)

    async def redis_ready() -> None:
        await app[REDIS].ping()

    app[READY_CHECKS]["redis"] = redis_ready
    # The admin has loaded this version of the functions (common/scripts.py).
    app[READY_CHECKS]["functions"] = lambda: app[STORE].scripts.check()
    return app


def main() -> None:
    serve("trip_service", create_app)
