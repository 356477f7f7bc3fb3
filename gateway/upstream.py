"""Calls to trip_service and driver_service.

One pooled `ClientSession` per upstream, a timeout on every call, retries
with exponential backoff for idempotent calls only (a refused connection is
retried for any call: the request never reached the server), and a circuit
breaker per upstream so a dead service costs callers nothing but a fast 503.
Problems the upstream answers (4xx) pass through with their status; a dead or
failing upstream becomes 503 with Retry-After, a slow one 504, never a 500.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import Histogram

from common import errors, metrics
from common.tracing import outgoing_headers

from .config import GatewaySettings

logger = logging.getLogger(__name__)

UPSTREAM_LATENCY = Histogram(
    "gateway_upstream_request_duration_seconds",
    "Latency of calls from the gateway to an upstream service",
    ["upstream", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25),
)

CLOSED, HALF_OPEN, OPEN = 0, 1, 2
_STATE_NAMES = {CLOSED: "closed", HALF_OPEN: "half-open", OPEN: "open"}


class CircuitBreaker:
    """Consecutive-failure breaker: `threshold` failures open it for `cooldown_s`;
    then a single probe call is let through, whose outcome closes or re-opens it."""

    def __init__(
        self,
        name: str,
        threshold: int,
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = max(1, threshold)
        self.cooldown_s = cooldown_s
        self.clock = clock
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self._probe_in_flight = False
        self._gauge = metrics.CIRCUIT_STATE.labels(name)
        self._publish()

    def _publish(self) -> None:
        self._gauge.set(self.state)

    @property
    def state_name(self) -> str:
        return _STATE_NAMES[self.state]

    def retry_after(self) -> float:
        if self.state != OPEN:
            return 0.0
        return max(0.0, self.opened_at + self.cooldown_s - self.clock())

    def allow(self) -> bool:
        """May a call go out now? In half-open state only one probe at a time."""
        if self.state == OPEN:
            if self.clock() - self.opened_at < self.cooldown_s:
                return False
            self.state = HALF_OPEN
            self._probe_in_flight = False
            self._publish()
        if self.state == HALF_OPEN:
            if self._probe_in_flight:
                return False
            self._probe_in_flight = True
        return True

    def success(self) -> None:
        self.failures = 0
        self._probe_in_flight = False
        if self.state != CLOSED:  # every successful call: nothing else to do then
            logger.info("circuit of %s closed", self.name)
            self.state = CLOSED
            self._publish()

    def failure(self) -> None:
        self.failures += 1
        self._probe_in_flight = False
        if self.state == HALF_OPEN or self.failures >= self.threshold:
            if self.state != OPEN:
                logger.warning(
                    "circuit of %s opened after %d failures", self.name, self.failures
                )
            self.state = OPEN
            self.opened_at = self.clock()
            self._publish()

    def release_probe(self) -> None:
        """A call let through that never went out: another may probe."""
        self._probe_in_flight = False

    def release(self) -> None:
        """A call that neither proved nor disproved health (an upstream 4xx)."""
        if self.state == HALF_OPEN:
            self.success()
        else:
            self.failures = 0


class UpstreamProblem(errors.AppError):
    """A problem answered by an upstream, passed through with its status."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.title = str(body.get("title") or "Upstream problem")
        self.type_ = str(body.get("type") or errors.error_for_status(status).type_)
        extra = {
            k: v
            for k, v in body.items()
            if k not in ("type", "title", "status", "detail", "errors")
        }
        errs = body.get("errors") if isinstance(body.get("errors"), list) else None
        super().__init__(body.get("detail") or self.title, errors=errs, extra=extra)
        if status == 429 or status == 503:
            self.headers["Retry-After"] = "1"


@dataclass(slots=True)
class Reply:
    status: int
    body: Any  # parsed JSON, or None for an empty body


class _Retryable(Exception):
    def __init__(self, kind: str, cause: BaseException | None = None, status: int = 0) -> None:
        super().__init__(kind)
        self.kind = kind
        self.cause = cause
        self.status = status


class Upstream:
    """One internal service: its pooled session, timeouts, retries and breaker."""

    def __init__(
        self,
        name: str,
        base_url: str,
        timeout_s: float,
        config: GatewaySettings,
        *,
        connections: int | None = None,
        breaker: CircuitBreaker | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.retries = config.upstream_retries
        self.backoff_s = config.upstream_backoff_s
        self.connections = max(1, connections or config.upstream_connections)
        # A second pool to the same service (long polls) shares its breaker:
        # the service's health is one thing.
        self.breaker = breaker or CircuitBreaker(
            name, config.breaker_failures, config.breaker_cooldown_s
        )
        # Sent on every call: the service-to-service credential.
        self.headers = dict(headers or {})
        # A call holds a slot while it has a connection. Waiting for one is
        # the gateway's own congestion, not the upstream's failure: it never
        # counts against the breaker, and the wait is bounded by the call's
        # timeout (then 503 busy) outside the call's own timeout.
        self._slots = asyncio.Semaphore(self.connections)
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._latencies: dict[str, Any] = {}

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.connections, keepalive_timeout=30, enable_cleanup_closed=True
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            json_serialize_bytes=orjson.dumps,
            raise_for_status=False,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError(f"upstream {self.name} is not open")
        return self._session

    # -- calls -------------------------------------------------------------
    async def get(self, path: str, *, params: dict | None = None, **kw) -> Reply:
        return await self.call("GET", path, params=params, idempotent=True, **kw)

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        idempotent: bool | None = None,
        timeout_s: float | None = None,
        retries: int | None = None,
        expect: tuple[int, ...] = (200, 201, 204),
    ) -> Reply:
        """Call the upstream; return the reply for an expected status, raise
        `UpstreamProblem` for a 4xx it answered, 503/504 problems otherwise.
        `retries` overrides the default, e.g. 0 for an optional part of an
        answer that should not hold the rest back."""
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
        timeout = timeout_s if timeout_s is not None else self.timeout_s
        attempts = 1 + max(0, self.retries if retries is None else retries)
        last: _Retryable | None = None
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(self._backoff(attempt))
            if not self.breaker.allow():
                metrics.UPSTREAM_ERRORS.labels(self.name, "circuit_open").inc()
                raise self._unavailable(f"{self.name} is unavailable (circuit open).")
            try:
                reply = await self._once(method, path, json, params, timeout)
            except _Retryable as exc:
                last = exc
                metrics.UPSTREAM_ERRORS.labels(self.name, exc.kind).inc()
                self.breaker.failure()
                # A refused connection never reached the server: safe to retry
                # whatever the method. Anything else only when idempotent.
                if exc.kind == "connect" or idempotent:
                    continue
                break
            if reply.status in expect:
                self.breaker.success()
                return reply
            if 400 <= reply.status < 500:
                self.breaker.release()
                raise UpstreamProblem(reply.status, _problem_body(reply))
            # 5xx: the upstream is in trouble (its own dependency down, a bug).
            metrics.UPSTREAM_ERRORS.labels(self.name, f"http_{reply.status // 100}xx").inc()
            self.breaker.failure()
            last = _Retryable("server_error", status=reply.status)
            if not idempotent:
                break
        assert last is not None
        if last.kind == "timeout":
            raise errors.Timeout(
                f"{self.name} did not answer within {timeout:g} s.",
                headers={"Retry-After": "1"},
            )
        if last.kind == "server_error":
            logger.warning("%s answered %s to %s %s", self.name, last.status, method, path)
            raise self._unavailable(f"{self.name} failed to handle the request.")
        logger.warning("%s unreachable on %s %s: %r", self.name, method, path, last.cause)
        raise self._unavailable(f"{self.name} is unavailable.")

    def _backoff(self, attempt: int) -> float:
        base = self.backoff_s * (2 ** (attempt - 1))
        return base / 2 + random.random() * base / 2

    def _unavailable(self, detail: str) -> errors.Unavailable:
        retry = max(1, round(self.breaker.retry_after() + 0.49))
        return errors.Unavailable(
            detail, headers={"Retry-After": str(retry)}, extra={"upstream": self.name}
        )

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        # Immutable, and a few values serve nearly every call: built once each
        # (a long poll's own wait makes others, which are not kept).
        found = self._timeouts.get(seconds)
        if found is None:
            found = aiohttp.ClientTimeout(total=seconds)
            if len(self._timeouts) < 16:
                self._timeouts[seconds] = found
        return found

    def _latency(self, method: str):
        found = self._latencies.get(method)
        if found is None:
            found = self._latencies[method] = UPSTREAM_LATENCY.labels(self.name, method)
        return found

    async def _once(
        self, method: str, path: str, json: Any, params: dict | None, timeout: float
    ) -> Reply:
        try:
            if self._slots.locked():
                await asyncio.wait_for(self._slots.acquire(), timeout)
            else:  # a free slot: taken at once, without wait_for's timer and task
                await self._slots.acquire()
        except asyncio.TimeoutError:
            # Not the upstream's failure (the breaker is not told): a
            # half-open breaker's probe slot is given back by release().
            self.breaker.release_probe()
            metrics.UPSTREAM_ERRORS.labels(self.name, "pool_busy").inc()
            raise errors.Unavailable(
                f"The gateway has no free connection to {self.name}; retry shortly.",
                headers={"Retry-After": "1"},
                extra={"upstream": self.name},
            ) from None
        try:
            return await self._request(method, path, json, params, timeout)
        finally:
            self._slots.release()

    async def _request(
        self, method: str, path: str, json: Any, params: dict | None, timeout: float
    ) -> Reply:
        started = time.perf_counter()
        headers = {**outgoing_headers(), **self.headers}
        try:
            async with self.session.request(
                method,
                self.base_url + path,
                json=json,
                params=params,
                headers=headers,
                timeout=self._timeout(timeout),
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except asyncio.TimeoutError as exc:
            raise _Retryable("timeout", exc) from None
        except aiohttp.ClientConnectorError as exc:
            raise _Retryable("connect", exc) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise _Retryable("disconnect", exc) from None
        finally:
            self._latency(method).observe(time.perf_counter() - started)
        body = None
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                body = {"detail": raw[:200].decode(errors="replace")}
        return Reply(status, body)

    async def probe(self, path: str = "/readyz", timeout_s: float = 1.0) -> None:
        """Readiness: one call outside the breaker to the upstream's own
        readiness (a service whose Redis is down is alive but cannot serve);
        raises, naming what is down, unless it answers 200. A success closes
        an open breaker at once, so the gateway heals as soon as the upstream
        is back."""
        try:
            async with self.session.get(
                self.base_url + path,
                headers={**outgoing_headers(), **self.headers},
                timeout=aiohttp.ClientTimeout(total=timeout_s),
            ) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{self.name} answered {resp.status}{_down_parts(raw)}")
        except asyncio.TimeoutError:
            raise RuntimeError(f"{self.name} did not answer within {timeout_s:g} s") from None
        except aiohttp.ClientError as exc:
            raise RuntimeError(f"{self.name} unreachable: {exc.__class__.__name__}") from None
        if self.breaker.state != CLOSED:
            self.breaker.success()


def _down_parts(raw: bytes) -> str:
    """`: redis` from a readiness answer `{checks: {redis: "down: ..."}}`."""
    try:
        checks = orjson.loads(raw).get("checks")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    if not isinstance(checks, dict):
        return ""
    down = sorted(str(k) for k, v in checks.items() if v != "ok")
    return f" (not ready: {', '.join(down)})" if down else ""


def _problem_body(reply: Reply) -> dict[str, Any]:
    if isinstance(reply.body, dict):
        return reply.body
    return {"title": "Upstream problem", "detail": str(reply.body)[:200] if reply.body else None}


@dataclass(slots=True)
class Upstreams:
    trips: Upstream
    drivers: Upstream
    # driver_service's long polls: a pool of their own (same breaker), so
    # however many are open, ordinary calls to driver_service find a connection.
    driver_polls: Upstream | None = None

    def all(self) -> list[Upstream]:
        return [u for u in (self.trips, self.drivers, self.driver_polls) if u is not None]

    @property
    def polls(self) -> Upstream:
        return self.driver_polls or self.drivers


UPSTREAMS = web.AppKey("upstreams", Upstreams)


def upstreams_ctx(upstreams: Upstreams):
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        for upstream in upstreams.all():
            await upstream.open()
        app[UPSTREAMS] = upstreams
        try:
            yield
        finally:
            for upstream in upstreams.all():
                await upstream.close()

    return ctx
