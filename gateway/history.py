"""The recent past for the dashboard: how the system behaved minute by minute
since this gateway started, from the events its stream readers see and from
its own request metrics.

Every gateway process reads every event of every region (gateway/live.py),
so each one holds the same story of trips; the API part is this process's own
traffic. Nothing here is durable or shared: it is a view of the current run,
bounded in memory (an hour of minutes, twenty minutes of 10-second samples),
and costs the hot path one dict lookup per event (the JSON of an event is
read only for the few types that carry a fare or a surge).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from aiohttp import web

from common import metrics
from common.timeutil import iso, now_ms
from common.trip.statemachine import REQUESTED_EVENT, TERMINAL, TRIP_EVENTS, Status, transition

from .live import StreamEvent

MINUTE_MS = 60_000
MINUTES_KEPT = 60
SAMPLE_EVERY_S = 10.0
SAMPLES_KEPT = 120
# Requested times of trips not yet assigned, to time request -> assigned; the
# oldest are forgotten first (a trip waits at most TRIP_EXPIRY_S).
REQUESTED_KEPT = 50_000
LATENCIES_PER_MINUTE = 2_000
ROUTE_WINDOW_S = 300
# Routes that wait by design (long polls, streams): their latency says how
# long a client chose to wait, not how fast the system is.
WAITING_ROUTES = frozenset({
    "/v1/driver/offers/next", "/v1/trips/{id}/events", "/v1/ops/events",
})
# What each minute counts, by the status the event leads to: a trip's
# request, its assignment and each way it ends (common/trip/statemachine.py).
OUTCOMES = {
    REQUESTED_EVENT: Status.REQUESTED.value,
    transition("accept").event: Status.ASSIGNED.value,
    **{e.type: e.status.value for e in TRIP_EVENTS if e.status in TERMINAL},
}


@dataclass
class Minute:
    start_ms: int
    counts: dict[str, int] = field(default_factory=dict)
    to_assigned_ms: list[int] = field(default_factory=list)
    fares: list[Decimal] = field(default_factory=list)
    surges: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.to_assigned_ms)
        fare_avg = sum(self.fares) / len(self.fares) if self.fares else None
        return {
            "at": iso(self.start_ms),
            **{name: self.counts.get(name, 0) for name in OUTCOMES.values()},
            "to_assigned_p50_ms": _pick(lat, 0.50),
            "to_assigned_p95_ms": _pick(lat, 0.95),
            "fare_avg": None if fare_avg is None else str(fare_avg.quantize(Decimal("0.01"))),
            "surge_avg": round(sum(self.surges) / len(self.surges), 2) if self.surges else None,
        }


def _pick(ordered: list[int], q: float) -> int | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class History:
    def __init__(self, service: str = "gateway") -> None:
        self.service = service
        self.since_ms = now_ms()
        self.minutes: deque[Minute] = deque(maxlen=MINUTES_KEPT)
        self.run: dict[str, int] = {name: 0 for name in OUTCOMES.values()}
        self._requested: OrderedDict[str, int] = OrderedDict()
        self._events = 0
        self._samples: deque[tuple[int, float]] = deque(maxlen=SAMPLES_KEPT)
        self._routes: deque[tuple[float, dict]] = deque()  # (monotonic, cumulative snapshot)

    # -- events (called by the hub for every event it reads) -----------------
    def observe(self, event: StreamEvent) -> None:
        self._events += 1
        outcome = OUTCOMES.get(event.type)
        if outcome is None:
            return
        at_ms = event.order[0]
        minute = self._minute(at_ms)
        minute.counts[outcome] = minute.counts.get(outcome, 0) + 1
        self.run[outcome] += 1
        if outcome == "requested":
            self._requested[event.trip_id] = at_ms
            if len(self._requested) > REQUESTED_KEPT:
                self._requested.popitem(last=False)
            surge = _data(event).get("surge")
            if isinstance(surge, (int, float)):
                minute.surges.append(float(surge))
        elif outcome == "assigned":
            asked = self._requested.pop(event.trip_id, None)
            if asked is not None and len(minute.to_assigned_ms) < LATENCIES_PER_MINUTE:
                minute.to_assigned_ms.append(max(0, at_ms - asked))
        elif outcome == "completed":
            fare = _data(event).get("fare")
            amount = fare.get("amount") if isinstance(fare, dict) else None
            try:
                minute.fares.append(Decimal(str(amount)))
            except (InvalidOperation, ValueError):
                pass
        else:
            self._requested.pop(event.trip_id, None)

    def _minute(self, at_ms: int) -> Minute:
        start = at_ms - at_ms % MINUTE_MS
        if self.minutes and self.minutes[-1].start_ms == start:
            return self.minutes[-1]
        for minute in reversed(self.minutes):  # an event of a minute already begun
            if minute.start_ms == start:
                return minute
        minute = Minute(start)
        if self.minutes and start < self.minutes[-1].start_ms:
            return minute  # older than the window kept: counted in `run` only
        self.minutes.append(minute)
        return minute

    # -- samples (every SAMPLE_EVERY_S) --------------------------------------
    def sample(self) -> None:
        at = now_ms()
        if self._samples:
            last_at, _ = self._samples[-1]
            seconds = max(0.001, (at - last_at) / 1000)
        else:
            seconds = max(0.001, (at - self.since_ms) / 1000)
        self._samples.append((at, self._events / seconds))
        self._events = 0
        now = time.monotonic()
        self._routes.append((now, self._route_totals()))
        while len(self._routes) > 1 and now - self._routes[1][0] >= ROUTE_WINDOW_S:
            self._routes.popleft()

    def _route_totals(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Cumulative requests by status class and latency buckets, per route."""
        totals: dict[tuple[str, str], dict[str, Any]] = {}
        for family in metrics.HTTP_REQUESTS.collect():
            for s in family.samples:
                if not s.name.endswith("_total") or s.labels.get("service") != self.service:
                    continue
                route = s.labels["route"]
                if route in WAITING_ROUTES or route == "unmatched":
                    continue
                entry = totals.setdefault((s.labels["method"], route), _empty())
                status = s.labels["status"]
                entry["requests"] += s.value
                if status.startswith("5"):
                    entry["errors"] += s.value
                elif status.startswith("4"):
                    entry["rejected"] += s.value
        buckets: dict[str, list[tuple[float, float]]] = {}
        for family in metrics.HTTP_LATENCY.collect():
            for s in family.samples:
                if s.name.endswith("_bucket") and s.labels.get("service") == self.service:
                    le = float(s.labels["le"])
                    buckets.setdefault(s.labels["route"], []).append((le, s.value))
        for (_, route), entry in totals.items():
            entry["buckets"] = sorted(buckets.get(route, []))
        return totals

    # -- the answer ----------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "since": iso(self.since_ms),
            "minute_s": MINUTE_MS // 1000,
            "run": dict(self.run),
            "minutes": self._last_hour(),
            "events_per_s": [{"at": iso(at), "value": round(v, 2)} for at, v in self._samples],
            "routes": self._routes_window(),
            "route_window_s": ROUTE_WINDOW_S,
        }

    def _last_hour(self) -> list[dict[str, Any]]:
        """Every minute of the last hour since the start, quiet ones as zeros."""
        now = now_ms()
        current = now - now % MINUTE_MS
        first = max(self.since_ms - self.since_ms % MINUTE_MS,
                    current - (MINUTES_KEPT - 1) * MINUTE_MS)
        seen = {m.start_ms: m for m in self.minutes}
        return [
            (seen.get(start) or Minute(start)).summary()
            for start in range(first, current + 1, MINUTE_MS)
        ]

    def _routes_window(self) -> list[dict[str, Any]]:
        if not self._routes:
            return []
        first = self._routes[0][1] if len(self._routes) > 1 else {}
        last = self._routes[-1][1]
        out = []
        for (method, route), now in last.items():
            then = first.get((method, route), _empty())
            requests = now["requests"] - then["requests"]
            if requests <= 0:
                continue
            deltas = _bucket_deltas(now["buckets"], then.get("buckets", []))
            out.append({
                "route": f"{method} {route}",
                "requests": int(requests),
                "errors": int(now["errors"] - then["errors"]),
                "rejected": int(now["rejected"] - then["rejected"]),
                "p50_ms": _bucket_quantile(deltas, 0.50),
                "p95_ms": _bucket_quantile(deltas, 0.95),
            })
        out.sort(key=lambda r: r["requests"], reverse=True)
        return out


def _empty() -> dict[str, Any]:
    return {"requests": 0.0, "errors": 0.0, "rejected": 0.0, "buckets": []}


def _data(event: StreamEvent) -> dict:
    try:
        data = orjson.loads(event.env).get("data")
    except (orjson.JSONDecodeError, AttributeError):
        return {}
    return data if isinstance(data, dict) else {}


def _bucket_deltas(now: list[tuple[float, float]], then: list[tuple[float, float]]):
    before = dict(then)
    return [(le, count - before.get(le, 0.0)) for le, count in now]


def _bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the bucket holding the q-quantile, in ms (a
    histogram says no more precisely); None without requests, and the last
    finite bound when the quantile lies beyond it."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    finite = [b for b in buckets if b[0] != float("inf")]
    for le, count in finite:
        if count >= q * total:
            return round(le * 1000, 1)
    return round(finite[-1][0] * 1000, 1) if finite else None


HISTORY = web.AppKey("history", History)


def history_ctx(history: History):
    """Samples events/s and the request metrics every SAMPLE_EVERY_S."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async def sampler() -> None:
            while True:
                await asyncio.sleep(SAMPLE_EVERY_S)
                history.sample()

        app[HISTORY] = history
        task = asyncio.create_task(sampler(), name="history-sampler")
        try:
            yield
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    return ctx
