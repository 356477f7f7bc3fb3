"""Admission control: overload is shed with a fast 503, never queued.

aiohttp runs every request's handler at once, so past its capacity a process
does not refuse work: the requests wait their turn in the event loop and the
Redis and upstream pools, and every caller waits seconds. The wait inside a
process is the number of requests in flight divided by the rate it finishes
them (Little's law), so a bound on requests in flight, sized as capacity x
the delay worth waiting (docs/performance.md), bounds the delay of every
admitted request; a request beyond it is answered at once with 503
`/problems/overloaded` and `Retry-After`, having changed nothing.

The in-flight count is a plain integer: the event loop runs one handler step
at a time, so no lock is needed. Routes that wait by design (long polls, live
event streams) and the operations routes (health, readiness, metrics, the
ops views) are neither counted nor shed; those have bounds of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import orjson
from aiohttp import web
from prometheus_client import Counter

from .tracing import clean_request_id, new_trace_id

logger = logging.getLogger(__name__)

SHED_REQUESTS = Counter(
    "http_requests_shed_total",
    "Requests answered 503 overloaded at once: the process was at its in-flight limit",
    ["service", "route"],
)
OVERLOADED_TYPE = "/problems/overloaded"
# Whole seconds (RFC 9110); a client that waits this long finds the burst gone.
RETRY_AFTER_S = 1
OPERATIONS_PATHS = ("/healthz", "/readyz", "/metrics")
_BODY = orjson.dumps({
    "type": OVERLOADED_TYPE,
    "title": "Overloaded",
    "status": 503,
    "detail": "The server is at its capacity; nothing was done. Retry after the time in Retry-After.",
})
_HEADERS = {"Retry-After": str(RETRY_AFTER_S), "Content-Type": "application/problem+json"}


class Admission:
    """At most `limit` requests in flight in this process (0: no limit).

    `exempt` holds the route paths (aiohttp's canonical form, e.g.
    `/v1/trips/{id}/events`) that are never counted, `exempt_prefixes` the
    path prefixes; the operations paths always are."""

    def __init__(
        self,
        service: str,
        limit: int,
        *,
        exempt: Iterable[str] = (),
        exempt_prefixes: tuple[str, ...] = (),
    ) -> None:
        if limit < 0:
            raise ValueError("the in-flight limit is 0 (none) or more")
        self.service = service
        self.limit = limit
        self.in_flight = 0
        self._exempt = frozenset(OPERATIONS_PATHS) | frozenset(exempt)
        self._prefixes = exempt_prefixes
        # Per route resource: its shed counter, or None when exempt. Decided
        # once per route, so a request costs one dict lookup here.
        self._routes: dict[Any, Any] = {}

    def _decide(self, resource: Any) -> Any:
        path = resource.canonical if resource is not None else "unmatched"
        if path in self._exempt or (self._prefixes and path.startswith(self._prefixes)):
            return None
        return SHED_REQUESTS.labels(self.service, path)

    @web.middleware
    async def middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if not self.limit:
            return await handler(request)
        route = request.match_info.route
        resource = route.resource if route is not None else None
        try:
            shed = self._routes[resource]
        except KeyError:
            shed = self._routes[resource] = self._decide(resource)
        if shed is None:
            return await handler(request)
        if self.in_flight >= self.limit:
            shed.inc()
            rid = clean_request_id(request.headers.get("X-Request-ID")) or new_trace_id()[:16]
            return web.Response(body=_BODY, status=503, headers={**_HEADERS, "X-Request-ID": rid})
        self.in_flight += 1
        try:
            return await handler(request)
        finally:
            self.in_flight -= 1
