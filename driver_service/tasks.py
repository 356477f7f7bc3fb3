"""Background workers owned by the application: one cleanup_ctx entry per
kind of worker, started with the app, stopped gracefully on shutdown (a
consumer finishes the batch in hand), cancelled only past a grace period."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from aiohttp import web

logger = logging.getLogger(__name__)

STOP_GRACE_S = 5.0
TASKS = web.AppKey("background_tasks", dict)


class Worker(Protocol):
    async def run(self) -> None: ...

    def stop(self) -> None: ...


def worker_ctx(name: str, make: Callable[[web.Application], list[Worker]]):
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        workers = make(app)
        tasks = [
            asyncio.create_task(w.run(), name=f"{name}-{i}") for i, w in enumerate(workers)
        ]
        app[TASKS][name] = tasks
        try:
            yield
        finally:
            for w in workers:
                w.stop()
            done, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S) if tasks else ((), ())
            for task in pending:
                logger.warning("%s did not stop within %.0f s; cancelling", task.get_name(), STOP_GRACE_S)
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    logger.error("%s had failed", task.get_name(), exc_info=task.exception())

    return ctx


def check_alive(app: web.Application):
    """Readiness: every background task is still running."""

    async def check() -> None:
        dead = [t.get_name() for tasks in app[TASKS].values() for t in tasks if t.done()]
        if dead:
            raise RuntimeError(f"stopped: {', '.join(dead)}")

    return check
