"""Wait for conditions, never for time: the one way tests poll.

`eventually` in a coroutine, `eventually_blocking` in a plain test (a
process under test, a thread): both poll `predicate` until it returns
something truthy and return it, or fail with `message` at the deadline.
"""

from __future__ import annotations

import asyncio
import inspect
import time


def _timed_out(message: str, timeout: float) -> AssertionError:
    return AssertionError(message or "condition not met within %.1fs" % timeout)


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
            raise _timed_out(message, timeout)
        await asyncio.sleep(interval)


def eventually_blocking(predicate, timeout: float = 10.0, interval: float = 0.02,
                        message: str = ""):
    """`eventually` for code without an event loop: blocks between polls."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise _timed_out(message, timeout)
        time.sleep(interval)
