"""Dispatch measured open-loop: latency at a given rate of trip requests.

Riders request trips on a fixed schedule (one task started per tick of a
clock, whatever the answers to the earlier ones), through the gateway as a
client would; drivers long-poll their offers, accept at once and drive the
trip through arrive, start and complete, so they are available again at
once. The rate steps up (5, 10, 20, 40, 80, ... trips/s) until the p99 of
request -> offered passes 50 ms at two rates in a row (or 250 ms at one),
or an error appears.

Per rate, from the client's clock: request -> offered (the driver's long
poll returns the offer) and request -> assigned (the accept returns), p50
and p99, counted from the request's *scheduled* time (a late send counts
against the system, not for it); and, as a cross-check, the same from the
stream entry ids of `trip.requested`, `trip.offered` and `trip.assigned`
(the server's clock). Also per rate: the CPU each process spent per trip
(psutil) and the Redis commands per trip (INFO commandstats).

    .venv/bin/python -m bench.openloop [--rates 5,10,20,40,80,160,320] [--seconds 10]
                                       [--drivers 100] [--riders 200]
    .venv/bin/python -m bench.openloop --profile 40 [--seconds 10]
    .venv/bin/python -m bench.openloop --appendfsync everysec   # what the fsyncs cost

`--profile RATE` runs that one rate with driver_service (home of the
dispatcher) under cProfile counting its CPU time (bench/profiled.py) and
Redis logging every call in its SLOWLOG, and prints the top functions by own
and cumulative time (all, then the project's own), the Redis time per
command and per function (FCALL), and the CPU per process. Profiling slows
driver_service down: its latencies are not those of the sweep. The work
folder (logs, the profile) is kept and named at the end.

`make bench` runs the sweep as part of scenario 6 (bench/run.py).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import pstats
import random
import secrets
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psutil

from common import keys
from common.embedded import EmbeddedRedis, free_port
from common.redisconn import create_redis
from common.scripts import load as load_functions
from deploy.processes import ServiceProcess, wait_ready

from .flow import _ID, pct, trip_times
from .results import Row
from .seed import CENTER, DROPOFF, Account, Client, SeedError, go_online, near, sign_up_many

REGION = "sf"
TARGET_MS = 50.0
# A rate whose p99 is this many times the target ends the sweep.
FAR_PAST = 5
DEFAULT_RATES = (5, 10, 20, 40, 80, 160, 320)
# A driver's long poll waits this long (the longest the API allows), as a
# driver's app would: idle drivers cost the system little between trips. The
# polls still open when the scenario ends are cancelled (the client leaves).
POLL_WAIT_S = 20
# After the schedule, how long the trips of a rate may take to be done.
DRAIN_S = 30.0
# Seconds of idle CPU measured before the first rate.
IDLE_S = 3.0


@dataclass
class RateResult:
    rate: float
    seconds: float
    scheduled: int = 0
    # Requests not sent because every rider still had a trip open.
    skipped: int = 0
    # Most drivers between an offer and the end of its trip at once.
    busy_max: int = 0
    requested: int = 0
    offered: int = 0
    assigned: int = 0
    completed: int = 0
    errors: int = 0
    error_kinds: Counter = field(default_factory=Counter)
    send_lag_ms: list[float] = field(default_factory=list)
    to_offered_ms: list[float] = field(default_factory=list)
    to_assigned_ms: list[float] = field(default_factory=list)
    stream_offered_ms: list[int] = field(default_factory=list)
    stream_assigned_ms: list[int] = field(default_factory=list)
    # CPU each process adds per trip (above its idle use), and its idle use.
    cpu_ms_per_trip: dict[str, float] = field(default_factory=dict)
    idle_cpu_ms_per_s: dict[str, float] = field(default_factory=dict)
    # The dispatch consumer group over the rate's window (_stream_latencies).
    dispatcher: dict = field(default_factory=dict)
    redis_per_trip: dict[str, dict] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[_ID.sub("{id}", kind)] += 1

    @property
    def p99_offered(self) -> float | None:
        return pct(self.to_offered_ms, 99)

    @property
    def within_target(self) -> bool:
        p99 = self.p99_offered
        return (self.errors == 0 and self.skipped == 0 and p99 is not None
                and p99 < TARGET_MS)

    def summary(self) -> dict:
        return {
            "rate_per_s": self.rate, "seconds": self.seconds, "scheduled": self.scheduled,
            "skipped_no_free_rider": self.skipped, "drivers_busy_max": self.busy_max,
            "requested": self.requested, "offered": self.offered, "assigned": self.assigned,
            "completed": self.completed, "errors": self.errors,
            "errors_by_kind": dict(self.error_kinds),
            "send_lag_ms_p99": _r(pct(self.send_lag_ms, 99)),
            "request_to_offered_ms": _pcts(self.to_offered_ms),
            "request_to_assigned_ms": _pcts(self.to_assigned_ms),
            "stream_requested_to_offered_ms": _pcts(self.stream_offered_ms),
            "stream_requested_to_assigned_ms": _pcts(self.stream_assigned_ms),
            "cpu_ms_per_trip": self.cpu_ms_per_trip,
            "idle_cpu_ms_per_s": self.idle_cpu_ms_per_s,
            "dispatcher": self.dispatcher,
            "redis_per_trip": self.redis_per_trip,
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _pcts(values: list[float]) -> dict:
    return {"p50": _r(pct(values, 50)), "p99": _r(pct(values, 99)),
            "max": _r(max(values)) if values else None}


@dataclass
class Pool:
    """The accounts of the scenario: drivers online near the centre, riders
    free to request (a rider has one open trip at a time)."""

    drivers: list[Account]
    riders: list[Account]


async def prepare(gateway: str, drivers: int, riders: int, rng: random.Random) -> Pool:
    async with Client(gateway) as client:
        ds, rs = await asyncio.gather(
            sign_up_many(client, drivers, "driver", "oloopd", "standard"),
            sign_up_many(client, riders, "rider", "oloopr"),
        )
        # Spread over 3 km around the centre; pickups fall within 2.5 km, so
        # every trip has drivers well within the dispatch radius. A few at a
        # time: this is set-up, not a load test (a profiled driver_service
        # is slow enough for a burst of 100 to open the gateway's circuit).
        gate = asyncio.Semaphore(8)

        async def online(d: Account) -> None:
            async with gate:
                await go_online(client, d, near(CENTER, 3000, rng))

        await asyncio.gather(*(online(d) for d in ds))
    return Pool(ds, rs)


class Processes:
    """CPU time of the processes under test, by name (psutil)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.procs = {name: psutil.Process(pid) for name, pid in pids.items()}

    def cpu(self) -> dict[str, float]:
        out = {}
        for name, p in self.procs.items():
            t = p.cpu_times()
            out[name] = t.user + t.system
        return out


async def commandstats(redis) -> dict[str, tuple[int, int]]:
    """calls and usec of every command so far (inner calls of functions count
    under their own command as well as under FCALL)."""
    info = await redis.info("commandstats")
    return {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
            for k, v in info.items()}


async def run_rates(gateway: str, redis, pool: Pool, rates, seconds: float,
                    rng: random.Random, procs: Processes | None = None,
                    stop_when_missed: bool = True, log=print,
                    after_level=None) -> list[RateResult]:
    """The sweep: each rate in turn, on the same drivers, until one misses the
    target (or every rate, with stop_when_missed=False). `after_level` is
    awaited as soon as a rate's trips are done, before anything is read."""
    loop = asyncio.get_running_loop()
    offered_at: dict[str, float] = {}
    assigned_at: dict[str, float] = {}
    done: dict[str, asyncio.Event] = {}
    stopping = asyncio.Event()
    current: list[RateResult] = []
    busy = [0]

    async with Client(gateway) as client:

        async def call(result: RateResult | None, *args, **kw):
            try:
                return await client.call(*args, **kw)
            except SeedError as exc:
                kind = str(exc).split(": ", 1)[0]
            except (OSError, asyncio.TimeoutError) as exc:
                kind = f"{args[0]} {args[1]}: {type(exc).__name__}"
            (result or current[-1]).error(kind)
            return None, None

        async def drive(d: Account) -> None:
            while not stopping.is_set():
                status, offer = await call(None, "GET", "/v1/driver/offers/next",
                                           token=d.token, params={"wait": POLL_WAIT_S})
                if status != 200:
                    continue
                trip_id = offer["trip_id"]
                offered_at.setdefault(trip_id, loop.time())
                busy[0] += 1
                try:
                    current[-1].busy_max = max(current[-1].busy_max, busy[0])
                    await serve(d, trip_id)
                finally:
                    busy[0] -= 1

        async def serve(d: Account, trip_id: str) -> None:
            status, _ = await call(None, "POST", f"/v1/driver/offers/{trip_id}/accept",
                                   token=d.token)
            if status != 200:
                return
            assigned_at.setdefault(trip_id, loop.time())
            for step in ("arrive", "start", "complete"):
                status, _ = await call(None, "POST", f"/v1/trips/{trip_id}/{step}",
                                       token=d.token)
                if status != 200:
                    break
            else:
                done.setdefault(trip_id, asyncio.Event()).set()

        drivers = [asyncio.create_task(drive(d)) for d in pool.drivers]
        free: list[Account] = list(pool.riders)
        results: list[RateResult] = []
        idle: dict[str, float] = {}
        missed = 0
        try:
            if procs:
                # What the processes spend with no trips (timers, sweeps, the
                # drivers' open polls), so a trip's CPU is what it adds.
                before_cpu, t_idle = procs.cpu(), loop.time()
                await asyncio.sleep(IDLE_S)
                after, elapsed = procs.cpu(), loop.time() - t_idle
                idle = {k: (after[k] - before_cpu[k]) / elapsed for k in after}
            for rate in rates:
                result = RateResult(rate=rate, seconds=seconds)
                current.append(result)
                before_cpu, t_level = (procs.cpu() if procs else None), loop.time()
                before_cmd = await commandstats(redis)
                start_ms = int(time.time() * 1000)
                scheduled_at: dict[str, float] = {}

                async def ride(r: Account, due: float, result=result,
                               scheduled_at=scheduled_at) -> None:
                    result.send_lag_ms.append((loop.time() - due) * 1000)
                    body = {"pickup": near(CENTER, 2500, rng), "dropoff": DROPOFF,
                            "product": "standard"}
                    status, trip = await call(result, "POST", "/v1/trips", token=r.token,
                                              json=body)
                    if status != 201:
                        free.append(r)
                        return
                    result.requested += 1
                    trip_id = trip["id"]
                    scheduled_at[trip_id] = due
                    event = done.setdefault(trip_id, asyncio.Event())
                    try:
                        await asyncio.wait_for(event.wait(), DRAIN_S)
                    except asyncio.TimeoutError:
                        result.error(f"trip not done within {DRAIN_S:g} s")
                        await call(result, "POST", f"/v1/trips/{trip_id}/cancel",
                                   token=r.token, json={}, expect=(200, 409))
                    else:
                        result.completed += 1
                    free.append(r)

                n = max(1, round(rate * seconds))
                t0 = loop.time() + 0.05
                riders = []
                for i in range(n):
                    due = t0 + i / rate
                    delay = due - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    result.scheduled += 1
                    if not free:
                        # Every rider still has a trip open: the system is far
                        # behind the schedule. Not an answer of the system, but
                        # the rate is then not what was asked: reported, and
                        # the rate does not count as within the target.
                        result.skipped += 1
                        continue
                    riders.append(asyncio.create_task(ride(free.pop(), due)))
                await asyncio.gather(*riders)
                stop_ms = int(time.time() * 1000)
                if after_level is not None:
                    await after_level(result)

                for trip_id, due in scheduled_at.items():
                    if trip_id in offered_at:
                        result.offered += 1
                        result.to_offered_ms.append((offered_at[trip_id] - due) * 1000)
                    if trip_id in assigned_at:
                        result.assigned += 1
                        result.to_assigned_ms.append((assigned_at[trip_id] - due) * 1000)
                await _stream_latencies(redis, start_ms, stop_ms, set(scheduled_at), result)
                trips = max(1, result.requested)
                if procs:
                    after, elapsed = procs.cpu(), loop.time() - t_level
                    result.cpu_ms_per_trip = {
                        k: round((after[k] - before_cpu[k] - idle[k] * elapsed) * 1000 / trips, 2)
                        for k in after}
                    result.idle_cpu_ms_per_s = {k: round(v * 1000, 1) for k, v in idle.items()}
                after_cmd = await commandstats(redis)
                result.redis_per_trip = _per_trip(before_cmd, after_cmd, trips)
                results.append(result)
                s = result.summary()
                log(f"dispatch open-loop {rate:g} trips/s: {result.requested}/{result.scheduled} "
                    f"requested, request->offered p50 {s['request_to_offered_ms']['p50']} ms "
                    f"p99 {s['request_to_offered_ms']['p99']} ms, ->assigned p99 "
                    f"{s['request_to_assigned_ms']['p99']} ms, errors {result.errors}"
                    + (f", {result.skipped} not sent (no free rider)" if result.skipped else ""))
                # One miss may be a neighbour's burst on a shared machine; two
                # in a row, any error, or a p99 far past the target (the next
                # rate would only queue, past the riders' patience) end it.
                missed = missed + 1 if not result.within_target else 0
                far = (result.p99_offered or 0) > FAR_PAST * TARGET_MS
                if stop_when_missed and (missed >= 2 or result.errors or far):
                    break
        finally:
            stopping.set()
            for task in drivers:
                task.cancel()
            await asyncio.gather(*drivers, return_exceptions=True)
            # The drivers leave, so they take no offers of later scenarios.
            for d in pool.drivers:
                await call(results[-1] if results else RateResult(0, 0), "POST",
                           "/v1/driver/status", token=d.token, json={"status": "offline"},
                           expect=(200, 409))
    return results


def _per_trip(before: dict, after: dict, trips: int) -> dict[str, dict]:
    """Redis commands per trip between two INFO commandstats: calls and usec,
    the costliest first."""
    out = {}
    for name, (calls, usec) in after.items():
        c0, u0 = before.get(name, (0, 0))
        if calls - c0 <= 0 or name in ("info",):
            continue
        out[name] = {"calls": round((calls - c0) / trips, 2), "usec": round((usec - u0) / trips, 1)}
    return dict(sorted(out.items(), key=lambda kv: -kv[1]["usec"]))


async def _stream_latencies(redis, start_ms: int, stop_ms: int, trip_ids: set[str],
                            result: RateResult) -> None:
    """From the stream: requested -> offered and -> assigned by the entry ids
    (the server's clock), and what the dispatcher's consumer group did with
    every entry of the window, from the delivery records it keeps per entry
    (delivered_at, acked_at): how long entries waited in the stream before
    it read them, and the share of the window it was busy (from a delivery
    to its ack, overlapping batches counted once)."""
    times = await trip_times(redis, start_ms, stop_ms, trip_ids)
    entry_ids = times.entry_ids
    result.stream_offered_ms = times.to_offered_ms()
    result.stream_assigned_ms = times.to_assigned_ms()
    waits: list[float] = []
    spans: list[tuple[int, int]] = []
    for i in range(0, len(entry_ids), 1000):
        chunk = entry_ids[i:i + 1000]
        async with redis.pipeline(transaction=False) as pipe:
            for sid in chunk:
                pipe.hgetall(keys.deliveries(REGION, sid))
            records = await pipe.execute()
        for sid, raw in zip(chunk, records):
            first = raw.get(f"{keys.GROUP_DISPATCH}|1")
            acked = raw.get(f"{keys.GROUP_DISPATCH}|1|acked_at")
            if not first or not acked:
                continue
            delivered = int(orjson.loads(first)["delivered_at"])
            waits.append(delivered - int(sid.split("-")[0]))
            spans.append((delivered, int(acked)))
    busy, end = 0, 0
    for a, b in sorted(spans):
        if b > end:
            busy += b - max(a, end)
            end = b
    window = max(1, stop_ms - start_ms)
    result.dispatcher = {
        "entries": len(entry_ids),
        "entries_per_trip": round(len(entry_ids) / max(1, result.requested), 1),
        "handled": len(spans),
        "read_wait_ms": _pcts(waits),
        "busy_share": round(busy / window, 2),
    }


def best_rate(results: list[RateResult]) -> float | None:
    """The highest rate of the sweep within the target (the table shows
    whether a lower one missed)."""
    return max((r.rate for r in results if r.within_target), default=None)


def table(results: list[RateResult]) -> str:
    """Client clock: from the scheduled request to the offer (the driver's
    poll returns it) and to the assignment (the accept returns); server
    clock: the stream ids of trip.requested and trip.offered."""
    head = (f"{'trips/s':>8} {'sent':>9} {'offered p50':>12} {'p99':>7} "
            f"{'assigned p50':>13} {'p99':>7} {'stream offered p50':>19} {'p99':>5} "
            f"{'busy':>5} {'err':>4}")
    lines = [head, "-" * len(head)]
    for r in results:
        s = r.summary()
        so = s["stream_requested_to_offered_ms"]
        lines.append(
            f"{r.rate:>8g} {f'{r.requested}/{r.scheduled}':>9} "
            f"{s['request_to_offered_ms']['p50']!s:>12} {s['request_to_offered_ms']['p99']!s:>7} "
            f"{s['request_to_assigned_ms']['p50']!s:>13} {s['request_to_assigned_ms']['p99']!s:>7} "
            f"{so['p50']!s:>19} {so['p99']!s:>5} {r.busy_max:>5} {r.errors:>4}")
    best = best_rate(results)
    lines.append(f"highest rate with p99 request->offered < {TARGET_MS:g} ms and no errors: "
                 f"{best if best is not None else 'none'} trips/s")
    return "\n".join(lines)


# --- in `make bench` ------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    rates: tuple[float, ...]
    seconds: float
    drivers: int
    riders: int


def settings(quick: bool) -> Settings:
    if quick:
        return Settings(rates=(5, 10), seconds=2.0, drivers=20, riders=40)
    # 100 drivers: at 80 trips/s and 0.2 s from offer to completion, 16 are
    # busy at once (the table's "busy" column shows the most seen). A rider
    # has one trip open at a time, so 200 riders allow 2.5 s per trip at
    # 80 trips/s before a request has no rider to send it.
    return Settings(rates=DEFAULT_RATES, seconds=10.0, drivers=100, riders=200)


def bench_rows(gateway: str, redis_url: str, pids: dict[str, int], quick: bool,
               rng: random.Random, log=print) -> list[Row]:
    """Scenario 6, open-loop: one row per rate and one with the highest rate
    within the target."""
    cfg = settings(quick)

    async def go() -> list[RateResult]:
        redis = create_redis(redis_url)
        try:
            pids["redis"] = int((await redis.info("server"))["process_id"])
            pool = await prepare(gateway, cfg.drivers, cfg.riders, rng)
            return await run_rates(gateway, redis, pool, cfg.rates, cfg.seconds, rng,
                                   Processes(pids), log=log)
        finally:
            await redis.aclose()

    results = asyncio.run(go())
    for line in table(results).splitlines():
        log(line)
    rows = []
    for r in results:
        s = r.summary()
        rows.append(Row(
            f"dispatch open-loop, {r.rate:g} trips/s requested: request->offered",
            round(r.assigned / r.seconds, 1), None, s["request_to_offered_ms"]["p50"],
            s["request_to_offered_ms"]["p99"], r.errors, number=6,
            unit="trips assigned/s (of those requested at the rate)",
            target=f"p99 request->offered < {TARGET_MS:g} ms", met=r.within_target,
            extra=s))
    best = best_rate(results)
    rows.append(Row(
        f"dispatch open-loop ({cfg.drivers} drivers): highest rate with p99 request->offered "
        f"< {TARGET_MS:g} ms",
        best, None, None, None, 0, number=6, unit="trips requested/s",
        extra={"rates": [r.rate for r in results], "drivers": cfg.drivers,
               "riders": cfg.riders, "seconds_per_rate": cfg.seconds}))
    return rows


# --- standalone run, and the profile ------------------------------------------------


class System:
    """Redis (embedded, AOF always), trip_service, driver_service (optionally
    under cProfile) and the gateway, each a real process."""

    def __init__(self, work: Path, profile_to: Path | None = None,
                 appendfsync: str = "always") -> None:
        self.work = work
        self.profile_to = profile_to
        self.appendfsync = appendfsync
        self.redis = None
        self.procs: dict[str, ServiceProcess] = {}

    def start(self) -> "System":
        logs = self.work / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.redis = EmbeddedRedis(self.work / "redis", port=free_port(),
                                   extra_args=["--appendfsync", self.appendfsync]).start()
        load_functions(self.redis.url)
        env = {"REDIS_URL": self.redis.url, "LOG_LEVEL": "WARNING", "SIGNUPS_PER_ADDR": "0",
               "OPS_USER_NAME": "ops", "OPS_PASSWORD": secrets.token_urlsafe(12)}
        self.procs["trip_service"] = ServiceProcess(
            "trip_service", env, log_path=logs / "trip_service.log").start(timeout=30)
        if self.profile_to:
            drivers = ServiceProcess("bench.profiled", env,
                                     args=[str(self.profile_to), "driver_service"],
                                     log_path=logs / "driver_service.log")
        else:
            drivers = ServiceProcess("driver_service", env, log_path=logs / "driver_service.log")
        self.procs["driver_service"] = drivers.start(timeout=60)
        self.procs["gateway"] = ServiceProcess(
            "gateway", {**env, "TRIP_SERVICE_URL": self.procs["trip_service"].url,
                        "DRIVER_SERVICE_URL": drivers.url},
            log_path=logs / "gateway.log").start(timeout=30)
        wait_ready(self.procs["gateway"].url)
        return self

    def pids(self, redis_pid: int) -> dict[str, int]:
        return {"redis": redis_pid, **{k: p.process.pid for k, p in self.procs.items()}}

    def stop(self) -> None:
        for name in ("gateway", "driver_service", "trip_service"):
            if name in self.procs:
                self.procs[name].stop(timeout=30)
        if self.redis is not None:
            self.redis.stop()


async def _slowlog_by_function(redis) -> dict[str, tuple[int, int]]:
    """Calls and usec per command from the SLOWLOG (every call logged), FCALL
    split by its function's name."""
    rows = await redis.execute_command("SLOWLOG", "GET", "-1")
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        usec, args = int(row[2]), row[3]
        args = [a.decode() if isinstance(a, bytes) else str(a) for a in args]
        name = args[0].lower()
        if name in ("fcall", "fcall_ro") and len(args) > 1:
            name = f"{name} {args[1]}"
        out[name][0] += 1
        out[name][1] += usec
    return {k: (v[0], v[1]) for k, v in out.items()}


async def _main(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="bench-openloop-"))
    profile_to = work / "driver_service.prof" if args.profile else None
    system = System(work, profile_to, args.appendfsync).start()
    redis = create_redis(system.redis.url)
    failed = False
    try:
        redis_pid = int((await redis.info("server"))["process_id"])
        procs = Processes(system.pids(redis_pid))
        started = time.perf_counter()
        pool = await prepare(system.procs["gateway"].url, args.drivers, args.riders, rng)
        print(f"{args.drivers} drivers online within 3 km of the centre, {args.riders} riders, "
              f"in {time.perf_counter() - started:.0f} s", flush=True)
        rates = [args.profile] if args.profile else [float(x) for x in args.rates.split(",")]
        if args.profile:
            await redis.execute_command("CONFIG", "SET", "slowlog-log-slower-than", "0")
            await redis.execute_command("CONFIG", "SET", "slowlog-max-len", "1000000")
            await redis.execute_command("SLOWLOG", "RESET")
        slow: dict = {}

        async def take_slowlog(_: RateResult) -> None:
            # Before the benchmark's own reads and the drivers going offline.
            if args.profile:
                await redis.execute_command("CONFIG", "SET", "slowlog-log-slower-than", "10000")
                slow.update(await _slowlog_by_function(redis))

        results = await run_rates(system.procs["gateway"].url, redis, pool, rates, args.seconds,
                                  rng, procs, stop_when_missed=not args.profile,
                                  after_level=take_slowlog)
        print()
        print(f"dispatch open-loop: {args.drivers} drivers, {args.riders} riders, "
              f"{args.seconds:g} s per rate, Redis AOF appendfsync {args.appendfsync}")
        print(table(results))
        for r in results:
            d = r.dispatcher
            print(f"  {r.rate:g}/s dispatcher: {d.get('entries_per_trip')} stream entries per "
                  f"trip; read after p50 {d.get('read_wait_ms', {}).get('p50')} ms, p99 "
                  f"{d.get('read_wait_ms', {}).get('p99')} ms; busy {d.get('busy_share')} "
                  "of the time")
            print(f"  {r.rate:g}/s CPU ms per trip, above idle: {r.cpu_ms_per_trip} "
                  f"(idle, ms per s: {r.idle_cpu_ms_per_s})")
            top = list(r.redis_per_trip.items())[:12]
            print(f"  {r.rate:g}/s Redis per trip (calls, usec): "
                  + ", ".join(f"{k} {v['calls']:g}x {v['usec']:g}us" for k, v in top))
            if r.error_kinds:
                print(f"  {r.rate:g}/s errors: {dict(r.error_kinds)}")
        failed = any(r.errors for r in results)
        if args.profile:
            trips = max(1, results[0].requested)
            # Valkey logs the commands a function calls as well as the FCALL,
            # whose time includes theirs.
            print(f"\nRedis SLOWLOG (every call) at {args.profile:g}/s, per trip: calls, usec "
                  "(an FCALL's time includes the commands it calls, which are also "
                  "counted under their own names)")
            for name, (calls, usec) in sorted(slow.items(), key=lambda kv: -kv[1][1])[:25]:
                print(f"  {name:<48} {calls / trips:6.2f} {usec / trips:8.1f}")
    finally:
        await redis.aclose()
        system.stop()
    if args.profile:
        stats = pstats.Stats(str(profile_to), stream=(out := io.StringIO()))
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(r"/(driver_service|common)/", args.top)
        print(f"\ncProfile of driver_service ({profile_to}):")
        print(out.getvalue())
    print(f"work dir: {work}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    full = settings(quick=False)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default=",".join(f"{r:g}" for r in full.rates))
    parser.add_argument("--seconds", type=float, default=full.seconds)
    parser.add_argument("--drivers", type=int, default=full.drivers)
    parser.add_argument("--riders", type=int, default=full.riders)
    parser.add_argument("--profile", type=float, default=None, metavar="RATE")
    parser.add_argument("--top", type=int, default=30)
    # The system's default is `always` (an acknowledged write is on disk);
    # `everysec` shows what the fsyncs the dispatcher waits for cost.
    parser.add_argument("--appendfsync", choices=("always", "everysec"), default="always")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
