"""Wait for conditions, never for time."""

from __future__ import annotations

import asyncio
import inspect
import time


async def eventually(predicate, timeout: float = 10.0, interval: float = 0.02, message: str = ""):
    """Poll `predicate` (sync or async) until it returns a truthy value; return it."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(message or "condition not met within %.1fs" % timeout)
        await asyncio.sleep(interval)
