"""Scenario 6: dispatch end to end, through the public API.

Riders request trips continuously (each waits for their trip to be done,
then requests the next); drivers long-poll their offers, accept at once and
drive the trip through arrive, start and complete, then wait for the next.
Measured: trips assigned per second, and request -> offered and request ->
assigned latency (p50, p99) from the stream entry ids of `trip.requested`,
`trip.offered` and `trip.assigned` (the server's clock, so the client's own
scheduling does not colour them). Errors: any answer the flow did not expect.
"""

from __future__ import annotations

import asyncio
import random
import re
import statistics
import time
from collections import Counter
from dataclasses import dataclass, field

from common import keys

from .seed import CENTER, DROPOFF, Account, Client, SeedError, go_online, near, sign_up_many

REGION = "sf"
RIDER_WAIT_S = 30.0
_ID = re.compile(r"\b(?:trp|drv|rdr)_[A-Za-z0-9_]+")


@dataclass
class FlowResult:
    seconds: float
    requested: int = 0
    assigned: int = 0
    completed: int = 0
    errors: int = 0
    # What went wrong, e.g. "POST /v1/trips/{id}/arrive answered 409": counts.
    error_kinds: Counter = field(default_factory=Counter)
    to_offered_ms: list[int] = field(default_factory=list)
    to_assigned_ms: list[int] = field(default_factory=list)

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[_ID.sub("{id}", kind)] += 1

    @property
    def assigned_per_s(self) -> float:
        return self.assigned / self.seconds if self.seconds else 0.0


def pct(values: list[int], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return float(s[min(len(s) - 1, int(len(s) * q / 100))])


async def prepare(gateway: str, drivers: int, riders: int,
                  rng: random.Random) -> tuple[list[Account], list[Account]]:
    async with Client(gateway) as client:
        ds, rs = await asyncio.gather(
            sign_up_many(client, drivers, "driver", "flowd", "standard"),
            sign_up_many(client, riders, "rider", "flowr"),
        )
        await asyncio.gather(*(go_online(client, d, near(CENTER, 3000, rng)) for d in ds))
    return ds, rs


async def run_flow(gateway: str, redis, drivers: list[Account], riders: list[Account],
                   seconds: float, rng: random.Random) -> FlowResult:
    done_events: dict[str, asyncio.Event] = {}
    result = FlowResult(seconds=seconds)
    loop = asyncio.get_running_loop()
    t_start = loop.time()
    stop_at = t_start + seconds
    start_ms = int(time.time() * 1000)

    async with Client(gateway) as client:

        async def call(*args, **kw):
            try:
                return await client.call(*args, **kw)
            except SeedError as exc:
                result.error(str(exc).split(": ", 1)[0])
            except (OSError, asyncio.TimeoutError) as exc:
                result.error(f"{args[0]} {args[1]}: {type(exc).__name__}")
            return None, None

        async def drive(d: Account) -> None:
            while loop.time() < stop_at:
                status, offer = await call("GET", "/v1/driver/offers/next", token=d.token,
                                           params={"wait": 1})
                if status != 200:
                    continue
                trip_id = offer["trip_id"]
                status, _ = await call("POST", f"/v1/driver/offers/{trip_id}/accept",
                                       token=d.token)
                if status != 200:
                    continue
                for step in ("arrive", "start", "complete"):
                    status, _ = await call("POST", f"/v1/trips/{trip_id}/{step}", token=d.token)
                    if status != 200:
                        break
                else:
                    result.completed += 1
                    # Only a trip that ended frees its rider for the next
                    # request (one still open would answer it 409).
                    event = done_events.get(trip_id)
                    if event is not None:
                        event.set()

        async def ride(r: Account) -> None:
            while loop.time() < stop_at:
                body = {"pickup": near(CENTER, 2500, rng), "dropoff": DROPOFF,
                        "product": "standard"}
                status, trip = await call("POST", "/v1/trips", token=r.token, json=body)
                if status != 201:
                    await asyncio.sleep(0.1)
                    continue
                result.requested += 1
                event = done_events.setdefault(trip["id"], asyncio.Event())
                try:
                    await asyncio.wait_for(event.wait(),
                                           min(RIDER_WAIT_S, stop_at + 5 - loop.time()))
                except asyncio.TimeoutError:
                    if loop.time() < stop_at:
                        # not served in time while drivers were driving
                        result.error(f"trip not completed within {RIDER_WAIT_S:g} s")
                    await call("POST", f"/v1/trips/{trip['id']}/cancel", token=r.token,
                               json={}, expect=(200, 409))

        await asyncio.gather(*(drive(d) for d in drivers), *(ride(r) for r in riders))
        # Trips still open at the end (a request just before the stop): cancel.
        for r in riders:
            status, page = await call("GET", "/v1/trips", token=r.token, params={"limit": 1})
            for t in (page or {}).get("items", []):
                if t["status"] in ("requested", "assigned", "arrived"):
                    await call("POST", f"/v1/trips/{t['id']}/cancel", token=r.token, json={},
                               expect=(200, 409))
        # The drivers leave, so they take no offers of later scenarios.
        for d in drivers:
            await call("POST", "/v1/driver/status", token=d.token, json={"status": "offline"},
                       expect=(200, 409))
    await _latencies(redis, start_ms, start_ms + int(seconds * 1000), result)
    return result


@dataclass
class TripTimes:
    """When each trip was requested, first offered and assigned, by the
    stream entry ids of its events (the server's clock, ms), and the ids of
    every entry read."""

    requested: dict[str, int] = field(default_factory=dict)
    offered: dict[str, int] = field(default_factory=dict)
    assigned: dict[str, int] = field(default_factory=dict)
    entry_ids: list[str] = field(default_factory=list)

    def to_offered_ms(self) -> list[int]:
        return [ms - self.requested[t] for t, ms in self.offered.items() if t in self.requested]

    def to_assigned_ms(self) -> list[int]:
        return [ms - self.requested[t] for t, ms in self.assigned.items() if t in self.requested]


async def trip_times(redis, start_ms: int, stop_ms: int | None = None,
                     trip_ids: set[str] | None = None) -> TripTimes:
    """The region's events from `start_ms` (to `stop_ms`, else to the end),
    of `trip_ids` only if given."""
    times = TripTimes()
    lower = f"{start_ms}-0"
    upper = f"{stop_ms + 1}-0" if stop_ms is not None else "+"
    while True:
        rows = await redis.xrange(keys.events(REGION), min=lower, max=upper, count=5000)
        if not rows:
            break
        lower = f"({rows[-1][0]}"
        for sid, fields in rows:
            times.entry_ids.append(sid)
            trip_id = fields.get("trip_id")
            if trip_ids is not None and trip_id not in trip_ids:
                continue
            ms = int(sid.split("-")[0])
            kind = fields.get("type")
            if kind == "trip.requested":
                times.requested[trip_id] = ms
            elif kind == "trip.offered":
                times.offered.setdefault(trip_id, ms)
            elif kind == "trip.assigned":
                times.assigned.setdefault(trip_id, ms)
    return times


async def _latencies(redis, start_ms: int, stop_ms: int, result: FlowResult) -> None:
    """Per trip requested within the window: its first offer and its assignment."""
    times = await trip_times(redis, start_ms)
    times.requested = {t: ms for t, ms in times.requested.items() if ms <= stop_ms}
    result.assigned = sum(1 for t, ms in times.assigned.items()
                          if t in times.requested and ms <= stop_ms)
    result.to_offered_ms = times.to_offered_ms()
    result.to_assigned_ms = times.to_assigned_ms()


def summary(result: FlowResult) -> dict:
    return {
        "trips_requested": result.requested,
        "trips_assigned": result.assigned,
        "trips_completed": result.completed,
        "errors_by_kind": dict(result.error_kinds),
        "assigned_per_s": round(result.assigned_per_s, 1),
        "request_to_offered_ms": {"p50": pct(result.to_offered_ms, 50),
                                  "p99": pct(result.to_offered_ms, 99),
                                  "mean": round(statistics.fmean(result.to_offered_ms), 2)
                                  if result.to_offered_ms else None},
        "request_to_assigned_ms": {"p50": pct(result.to_assigned_ms, 50),
                                   "p99": pct(result.to_assigned_ms, 99)},
    }
