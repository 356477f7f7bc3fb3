"""Process entry point shared by the three services."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable

from aiohttp import web

from .logs import configure_logging
from .redisconn import JsonModuleMissing
from .settings import Settings

logger = logging.getLogger(__name__)


def serve(service: str, create_app: Callable[[Settings], web.Application]) -> None:
    settings = Settings.from_env(service)
    configure_logging(service, settings.log_level)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        loop_factory = None
    logger.info("starting %s on %s:%d", service, settings.host, settings.port)
    try:
        web.run_app(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            access_log=None,
            print=None,
            shutdown_timeout=5.0,
            loop=loop_factory() if loop_factory else None,
            handler_cancellation=True,
        )
    except JsonModuleMissing as exc:
        logger.critical("%s", exc)
        print(f"\n{service}: {exc}\n", file=sys.stderr)
        sys.exit(3)
    except (OSError, asyncio.TimeoutError) as exc:
        logger.critical("%s cannot start: %s", service, exc)
        sys.exit(1)
