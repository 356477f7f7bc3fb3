"""Retrying an HTTP call as a well-behaved client does, on tenacity.

A call is tried again when it got no answer (connection refused or reset, a
timeout) or an answer that says "later" (429, 502, 503, 504 by default), after
the server's Retry-After when it sent one, else after an exponential backoff
with jitter, so that many clients turned away at once do not come back at
once. The last answer is returned when the attempts or the time run out; the
caller decides what a refusal means. One policy for the simulated city, the
benchmarks and the tests, so they all treat an overloaded system alike.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    stop_any,
    stop_never,
)
from tenacity.wait import wait_base

# Answers that mean "not now": rate limited, or an upstream briefly unavailable.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# No answer at all. aiohttp's errors and urllib's (URLError is an OSError).
NO_ANSWER = (aiohttp.ClientError, asyncio.TimeoutError, OSError)
MAX_BACKOFF_S = 8.0


def backoff_s(attempt: int, retry_after: str | None = None, cap_s: float = MAX_BACKOFF_S) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first).

    A Retry-After in seconds is honoured (up to twice the cap: a server that
    asks for longer is wrong about us); otherwise 0.25 s doubling up to the
    cap, times a jitter of 0.6 to 1.2.
    """
    if retry_after:
        try:
            return min(cap_s * 2, max(0.1, float(retry_after)))
        except ValueError:
            pass
    return min(cap_s, 0.25 * 2**attempt) * random.uniform(0.6, 1.2)


class wait_backoff(wait_base):  # noqa: N801  (tenacity's naming of wait strategies)
    """`backoff_s` as a tenacity wait: the Retry-After of the last answer, if any."""

    def __init__(self, cap_s: float = MAX_BACKOFF_S) -> None:
        self.cap_s = cap_s

    def __call__(self, retry_state: RetryCallState) -> float:
        retry_after = None
        outcome = retry_state.outcome
        if outcome is not None and not outcome.failed:
            headers = getattr(outcome.result(), "headers", None) or {}
            retry_after = headers.get("Retry-After")
        return backoff_s(retry_state.attempt_number - 1, retry_after, self.cap_s)


def transient(reply: Any) -> bool:
    """An answer worth trying again: none (status 0) or one that says "later"."""
    return reply.status == 0 or reply.status in RETRY_STATUSES


def _last_outcome(retry_state: RetryCallState) -> Any:
    # Out of attempts or time: the last answer (or the last error, raised).
    return retry_state.outcome.result()


def _policy(attempts: int | None, within_s: float | None, retry_on: Callable[[Any], bool],
            cap_s: float, on_retry: Callable[[RetryCallState], Any] | None) -> dict:
    stops = [stop_after_attempt(attempts)] if attempts is not None else []
    if within_s is not None:
        stops.append(stop_after_delay(within_s))
    return {
        "stop": stop_any(*stops) if stops else stop_never,
        "wait": wait_backoff(cap_s),
        "retry": retry_if_exception_type(NO_ANSWER) | retry_if_result(retry_on),
        "before_sleep": on_retry,
        "retry_error_callback": _last_outcome,
    }


def retrying(*, attempts: int | None = None, within_s: float | None = None,
             retry_on: Callable[[Any], bool] = transient, cap_s: float = MAX_BACKOFF_S,
             on_retry: Callable[[RetryCallState], Any] | None = None) -> AsyncRetrying:
    """An async retry policy: `await retrying(attempts=6)(coroutine_function, *args)`.

    `retry_on(answer)` says which answers to try again (by default `transient`);
    `on_retry` is called before each pause (to count or log retries).
    """
    return AsyncRetrying(**_policy(attempts, within_s, retry_on, cap_s, on_retry))


def retrying_sync(*, attempts: int | None = None, within_s: float | None = None,
                  retry_on: Callable[[Any], bool] = transient, cap_s: float = MAX_BACKOFF_S,
                  on_retry: Callable[[RetryCallState], Any] | None = None) -> Retrying:
    """The same policy for blocking code (urllib in the benchmarks' drivers)."""
    return Retrying(**_policy(attempts, within_s, retry_on, cap_s, on_retry))
