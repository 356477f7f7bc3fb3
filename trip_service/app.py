"""trip_service: owns trips, fares, the pending ranking, history."""

from __future__ import annotations

from aiohttp import web

from common.redisconn import REDIS, redis_ctx
from common.service import serve
from common.settings import Settings
from common.web import READY_CHECKS, create_base_app


def create_app(settings: Settings) -> web.Application:
    app = create_base_app(settings)
    app.cleanup_ctx.append(redis_ctx(settings))

    async def redis_ready() -> None:
        await app[REDIS].ping()

    app[READY_CHECKS]["redis"] = redis_ready
    return app


def main() -> None:
    serve("trip_service", create_app)
