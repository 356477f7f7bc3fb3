"""Admission control: overload is shed with a fast 503, never queued.

aiohttp runs every request's handler at once, so past its capacity a process
does not refuse work: the requests wait their turn in the event loop and the
Redis and upstream pools, and every caller waits seconds. The wait inside a
process is the number of requests in flight divided by the rate it finishes
them (Little's law), so a bound on requests in flight of (measured rate x
target delay) bounds the delay of every admitted request: the limit follows
the completions of the last fraction of a second, so it is sized from the
capacity the process has now (a busy machine has less), between a floor that
ordinary traffic never reaches and a ceiling. A request beyond it is
answered at once with 503 `/problems/overloaded` and `Retry-After`, having
changed nothing. As in CoDel, a burst is not overload: the limit holds only
once in flight has stayed at or above it for BURST_S without the queue
draining (to half the limit or below), or within SHED_MEMORY_S of a refusal
(the refused come back together after Retry-After); until then a burst is
admitted up to the ceiling, which holds at once.

A refusal is cheap but not free (the request is read and parsed before
anyone can refuse it), and clients that honour Retry-After come back when it
says: how many refusals a second a standing crowd causes is its size over
Retry-After. So Retry-After follows the refusals: while they exceed
REFUSALS_PER_COMPLETION of the completions it doubles (up to
MAX_RETRY_AFTER_S), once per Retry-After (the time its effect takes to
show), and it halves back while they stay below a quarter of that, or
falls back to 1 s at once when no request has been refused for twice its
value (the refused have all come back).

The in-flight count is a plain integer: the event loop runs one handler step
at a time, so no lock is needed. Routes that wait by design (long polls, live
event streams) and the operations routes (health, readiness, metrics, the
ops views) are neither counted nor shed; those have bounds of their own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import Counter, Gauge

from .tracing import clean_request_id, new_trace_id

logger = logging.getLogger(__name__)

SHED_REQUESTS = Counter(
    "http_requests_shed_total",
    "Requests answered 503 overloaded at once: the process was at its in-flight limit",
    ["service", "route"],
)
# Read at scrape time from the process's Admission (nothing on the hot path).
IN_FLIGHT = Gauge("http_requests_in_flight", "Requests counted by admission control now",
                  ["service"])
ADMISSION_LIMIT = Gauge(
    "http_admission_limit",
    "The in-flight limit in force (measured rate x target delay, within floor and ceiling)",
    ["service"],
)
OVERLOADED_TYPE = "/problems/overloaded"
# Whole seconds (RFC 9110); a client that waits this long finds the burst gone.
RETRY_AFTER_S = 1
# Under deep overload Retry-After doubles up to this, while the refusals
# exceed this share of the completions (a refusal costs the process about a
# fifth of an admitted location fix: half as many refusals as completions
# take about a tenth of its capacity).
MAX_RETRY_AFTER_S = 8
REFUSALS_PER_COMPLETION = 0.5
OPERATIONS_PATHS = ("/healthz", "/readyz", "/metrics")
# The limit never drops below this: a process just started, idle or back
# from a stall has room to show its rate, and slow requests at a low rate (a
# login's password hash) are not taken for a queue.
MIN_LIMIT = 32
# How often the limit follows the completion rate, and how much of the new
# window's rate it takes (an exponential average over a few windows).
WINDOW_S = 0.1
SMOOTHING = 0.5
# How long in flight may stay at or above the limit, without draining to
# half of it, before arrivals beyond the limit are shed (CoDel's interval,
# in the time a burst of a hundred requests takes to drain on 2 busy cores).
BURST_S = 0.5
# After a refusal, a crowd beyond the limit is the refused clients coming back
# after Retry-After, not a new burst: for this long (with Retry-After at 1 s;
# twice the Retry-After in force, plus BURST_S) no burst is admitted.
SHED_MEMORY_S = 2.0 * RETRY_AFTER_S + BURST_S
_BODY = orjson.dumps({
    "type": OVERLOADED_TYPE,
    "title": "Overloaded",
    "status": 503,
    "detail": "The server is at its capacity; nothing was done. Retry after the time in Retry-After.",
})
_HEADERS = {
    seconds: {"Retry-After": str(seconds), "Content-Type": "application/problem+json"}
    for seconds in range(RETRY_AFTER_S, MAX_RETRY_AFTER_S + 1)
}


class Admission:
    """At most (completion rate x `target_delay_s`) requests in flight in this
    process, within [min(MIN_LIMIT, max_limit), max_limit]; `max_limit` 0:
    no limit at all.

    `exempt` holds the route paths (aiohttp's canonical form, e.g.
    `/v1/trips/{id}/events`) that are never counted, `exempt_prefixes` the
    path prefixes; the operations paths always are."""

    def __init__(
        self,
        service: str,
        max_limit: int,
        target_delay_s: float,
        *,
        exempt: Iterable[str] = (),
        exempt_prefixes: tuple[str, ...] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_limit < 0 or target_delay_s <= 0:
            raise ValueError("the in-flight limit is 0 (none) or more, the target delay positive")
        self.service = service
        self.max_limit = max_limit
        self.min_limit = min(MIN_LIMIT, max_limit)
        self.target_delay_s = target_delay_s
        self._clock = clock
        # The limit in force: starts at the floor and follows the rate.
        self.limit = self.min_limit
        self.in_flight = 0
        self.rate = 0.0
        # Since when in flight has been at or above the limit without
        # draining (None: it is not).
        self._full_since: float | None = None
        # Requests shed in the current episode (0: not shedding), and when
        # the last one was.
        self._episode_shed = 0
        self._last_shed = float("-inf")
        self._done = 0
        self._window_start = clock()
        # Refusals in the current window; the Retry-After in force and when
        # it last changed.
        self._refused = 0
        self.refusal_rate = 0.0
        self.retry_after_s = RETRY_AFTER_S
        self._retry_set_at = self._window_start
        self._shed_memory_s = SHED_MEMORY_S
        self._exempt = frozenset(OPERATIONS_PATHS) | frozenset(exempt)
        self._prefixes = exempt_prefixes
        # Per route resource: its shed counter, or None when exempt. Decided
        # once per route, so a request costs one dict lookup here.
        self._routes: dict[Any, Any] = {}
        IN_FLIGHT.labels(service).set_function(lambda: self.in_flight)
        ADMISSION_LIMIT.labels(service).set_function(lambda: self.limit)

    def _decide(self, resource: Any) -> Any:
        path = resource.canonical if resource is not None else "unmatched"
        if path in self._exempt or (self._prefixes and path.startswith(self._prefixes)):
            return None
        return SHED_REQUESTS.labels(self.service, path)

    def _follow(self, now: float) -> None:
        """A window ended: the limit is the rate it measured x the target delay;
        Retry-After follows the refusals."""
        elapsed = now - self._window_start
        window = self._done / elapsed
        self.rate = window if not self.rate else self.rate + SMOOTHING * (window - self.rate)
        self.limit = min(self.max_limit, max(self.min_limit, int(self.rate * self.target_delay_s)))
        refused = self._refused / elapsed
        self.refusal_rate += SMOOTHING * (refused - self.refusal_rate)
        self._done = 0
        self._refused = 0
        self._window_start = now
        if self.retry_after_s > RETRY_AFTER_S and now - self._last_shed >= self._shed_memory_s:
            # No refusal for as long as the refused could take to come back
            # (an idle pause too, whatever the averages say): it is over.
            logger.warning("Retry-After back to %d s: no refusal for %.0f s",
                           RETRY_AFTER_S, now - self._last_shed)
            self.retry_after_s = RETRY_AFTER_S
            self._shed_memory_s = SHED_MEMORY_S
            self.refusal_rate = 0.0
            self._retry_set_at = now
            return
        if now - self._retry_set_at < self.retry_after_s:
            return  # the last change has not had the time to show
        wanted = self.retry_after_s
        if self.refusal_rate > REFUSALS_PER_COMPLETION * self.rate:
            wanted = min(MAX_RETRY_AFTER_S, self.retry_after_s * 2)
        elif self.refusal_rate < REFUSALS_PER_COMPLETION / 4 * self.rate:
            wanted = max(RETRY_AFTER_S, self.retry_after_s // 2)
        if wanted != self.retry_after_s:
            logger.warning("Retry-After %d s (was %d): %.0f refusals/s, %.0f completions/s",
                           wanted, self.retry_after_s, self.refusal_rate, self.rate)
            self.retry_after_s = wanted
            self._shed_memory_s = 2.0 * wanted + BURST_S
        self._retry_set_at = now

    def _overloaded(self) -> bool:
        """An arrival finds the limit reached: overload at the ceiling, once in
        flight has stayed at the limit for BURST_S, or soon after a refusal."""
        now = self._clock()
        if self._full_since is None:
            self._full_since = now
        if (self.in_flight < self.max_limit and now - self._full_since < BURST_S
                and now - self._last_shed >= self._shed_memory_s):
            return False
        if not self._episode_shed:
            logger.warning("overloaded: %d requests in flight for %.1f s; shedding beyond %d "
                           "(%.0f completed/s)", self.in_flight, now - self._full_since,
                           self.limit, self.rate)
        self._last_shed = now
        return True

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if not self.max_limit:
            return await handler(request)
        route = request.match_info.route
        resource = route.resource if route is not None else None
        try:
            shed = self._routes[resource]
        except KeyError:
            shed = self._routes[resource] = self._decide(resource)
        if shed is None:
            return await handler(request)
        if self.in_flight >= self.limit and self._overloaded():
            shed.inc()
            self._episode_shed += 1
            self._refused += 1
            rid = clean_request_id(request.headers.get("X-Request-ID")) or new_trace_id()[:16]
            return web.Response(body=_BODY, status=503,
                                headers={**_HEADERS[self.retry_after_s], "X-Request-ID": rid})
        self.in_flight += 1
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1
            if self._full_since is not None and self.in_flight <= self.limit // 2:
                self._full_since = None  # the queue drained
                if self._episode_shed:
                    logger.warning("no longer overloaded: %d requests shed", self._episode_shed)
                    self._episode_shed = 0
            self._done += 1
            now = self._clock()
            if now - self._window_start >= WINDOW_S:
                self._follow(now)
