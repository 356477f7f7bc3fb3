"""Process entry point shared by the three services."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import sys
from collections.abc import Callable
from dataclasses import fields
from typing import TypeVar

from aiohttp import web

from .logs import configure_logging
from .redisconn import JsonModuleMissing
from .settings import Settings, SettingsError

logger = logging.getLogger(__name__)

S = TypeVar("S", bound=Settings)
# Connections the kernel holds for the process before it accepts them (capped
# by net.core.somaxconn). At aiohttp's 128, a thousand clients connecting at
# once overflow it: the kernel drops their handshakes, and each waits out
# TCP's retransmission backoff (1, 3, 7, 15 s) before its first request is
# even read, which no admission control inside the process can see.
LISTEN_BACKLOG = 4096
# Allocations of container objects between two young collections (CPython's
# default: 700). A request's or a batch's objects (a consumer's 1,000 entries
# and their replies) live a few thousand allocations: at 700 a young
# collection walks them, promotes them, and older collections walk them
# again; at this threshold most are freed (by reference counting) before any
# collection sees them. Memory is not the cost: the young generation holds at
# most this many objects more.
YOUNG_THRESHOLD = 20_000


def settle_heap() -> None:
    """Once a process has started: what startup made (modules, classes, the
    app) lives as long as the process, so it is taken out of the collector's
    sight (a full collection no longer walks it: a busy consumer triggered one
    every few thousand entries, and walking the startup heap cost more per
    event than the rest of the runner's work); and young collections come
    less often (YOUNG_THRESHOLD)."""
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)


def _bound(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(LISTEN_BACKLOG)
    sock.setblocking(False)
    return sock


def serve(settings_type: type[S], create_app: Callable[[S], web.Application]) -> None:
    """Read the service's settings from the environment and run its app.
    A variable that cannot be read stops the process, naming it."""
    try:
        settings = settings_type.from_env()
    except SettingsError as exc:
        name = next(f.default for f in fields(settings_type) if f.name == "service")
        print(f"{name}: {exc}", file=sys.stderr)
        sys.exit(2)
    service = settings.service
    configure_logging(service, settings.log_level)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        loop_factory = None
    logger.info("starting %s on %s:%d", service, settings.host, settings.port)
    try:
        reuse = bool(settings.reuse_port)
        listen: dict = {"host": settings.host, "port": settings.port, "reuse_port": reuse}
        if settings.ops_port:
            # One app on two listeners; the app tells them apart by local port.
            logger.info("operations listener on %s:%d", settings.host, settings.ops_port)
            listen = {"sock": [_bound(settings.host, settings.port, reuse),
                               _bound(settings.host, settings.ops_port, reuse)]}
        app = create_app(settings)
        settle_heap()
        web.run_app(
            app,
            **listen,
            access_log=None,
            print=None,
            backlog=LISTEN_BACKLOG,
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
