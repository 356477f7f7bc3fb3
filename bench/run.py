"""`make bench`: our own cost against the honest limit.

Starts the system on the embedded default (no demo traffic) and the matched
baselines, seeds it through the public API, runs every scenario, prints one
table, writes results.json and draws the chart. BENCH_QUICK=1 runs
everything briefly (for the test of the harness); BENCH_OUT names the folder
of results.json and the chart (default: bench/).
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import psutil

from common.redisconn import create_redis

from . import flow, load, openloop, overload, routes, streamrate
from .results import Row, draw_chart, table, write_json
from .scale import ScaleBench
from .routes import Curves, Plan
from .seed import seed
from .system import BenchSystem, env_flag

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Config:
    quick: bool
    view_riders: int
    location_drivers: int
    loop_riders: int
    plan: Plan
    chain_rounds: int
    dispatch_s: float
    dispatch_drivers: int
    dispatch_riders: int
    stream_events: int
    stream_rounds: int
    scale_drivers: tuple[int, ...]
    scale_pending: tuple[int, ...]
    scale_samples: int
    memory_trips: int
    overload_levels: tuple[int, ...]
    overload_s: float

    @classmethod
    def from_env(cls) -> "Config":
        if env_flag("BENCH_QUICK"):
            # Enough drivers that none nears its session's rate limit (50/s): ten
            # drivers serving 80-100 trips/s each sent 40-50 requests a second.
            # (With ten, one run of several counted 12 errors in the flow.)
            return cls(
                quick=True, view_riders=8, location_drivers=8, loop_riders=32,
                plan=Plan(rounds=1, round_s=1.0, connections=8, level_s=1.0, levels=(0.5,)),
                chain_rounds=1, dispatch_s=3.0, dispatch_drivers=30, dispatch_riders=8,
                stream_events=20_000, stream_rounds=1, scale_drivers=(1_000, 2_000), scale_pending=(100, 300),
                scale_samples=10, memory_trips=200,
                overload_levels=overload.QUICK_LEVELS, overload_s=1.0,
            )
        return cls(
            quick=False, view_riders=128, location_drivers=64, loop_riders=96,
            plan=Plan(rounds=3, round_s=5.0, connections=16, level_s=3.0,
                      levels=(0.25, 0.5, 0.75)),
            chain_rounds=2, dispatch_s=20.0, dispatch_drivers=100, dispatch_riders=60,
            stream_events=300_000, stream_rounds=3, scale_drivers=(1_000, 10_000, 100_000),
            scale_pending=(100, 10_000), scale_samples=60, memory_trips=2_000,
            overload_levels=overload.LEVELS, overload_s=5.0,
        )


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def main() -> int:
    cfg = Config.from_env()
    out_dir = Path(os.environ.get("BENCH_OUT") or HERE)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ridehail-bench-"))
    started = time.monotonic()
    say(f"load generator: {load.tool_name()}; mode: {'quick' if cfg.quick else 'full'}; "
        f"work dir {work}")
    system = BenchSystem(work)
    rows: list[Row] = []
    curves = Curves()
    scale_points: list[dict] = []
    failed = False
    try:
        system.start()
        say(f"system up: gateway {system.gateway.url}, redis {system.redis_url}")
        rows, scale_points = _run_all(cfg, system, curves, work)
    except Exception:
        failed = True
        traceback.print_exc()
    finally:
        system.stop()
        if not env_flag("BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
    meta = {
        "tool": load.tool_name(),
        "mode": "quick" if cfg.quick else "full",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "elapsed_s": round(time.monotonic() - started, 1),
        "curves": curves.points,
        "scale": scale_points,
        "complete": not failed,
    }
    print()
    print(f"load generator: {load.tool_name()}")
    print(table(rows))
    write_json(out_dir / "results.json", rows, meta)
    try:
        draw_chart(out_dir / "chart.png", curves.points, scale_points)
    except Exception:
        traceback.print_exc()
        failed = True
    say(f"results in {out_dir / 'results.json'}, chart in {out_dir / 'chart.png'}; "
        f"{meta['elapsed_s']:.0f} s")
    return 1 if failed else 0


def _run_all(cfg: Config, system: BenchSystem, curves: Curves, work: Path) -> tuple[list[Row], list[dict]]:
    rng = random.Random(7)
    rows: list[Row] = []

    async def do_seed():
        redis = create_redis(system.redis_url)
        try:
            return await seed(system.gateway.url, redis, view=cfg.view_riders,
                              location=cfg.location_drivers, loop_riders=cfg.loop_riders,
                              rng=rng)
        finally:
            await redis.aclose()

    t0 = time.monotonic()
    seeded = asyncio.run(do_seed())
    say(f"seeded {len(set(seeded.view_trips))} assigned trips, "
        f"{len({d.subject_id for d in seeded.location_drivers})} online drivers "
        f"({len(seeded.view_riders)} and {len(seeded.location_drivers)} session tokens), "
        f"{len(seeded.loop_riders)} loop riders in {time.monotonic() - t0:.0f} s")

    gw, front = system.gateway.url, system.front.url
    watch = {name: psutil.Process(p.process.pid) for name, p in system.services().items()}
    rss: dict[str, int] = {}
    plan = cfg.plan

    view = routes.view_pair(seeded, gw, front)
    location = routes.location_pair(seeded, gw, front, rng)
    estimates = routes.estimates_pair(seeded, gw, front, rng)
    loop = routes.create_cancel_pair(seeded, gw, front, rng, location)

    # 1 (reference): the plain two-hop chain
    asyncio.run(_chain_key(system.redis_url, seeded.view_trips[0]))
    chain = routes.Rounds()
    for _ in range(cfg.chain_rounds):
        chain.add(load.run(front, routes.chain_requests(CHAIN_KEY),
                           connections=plan.connections, duration_s=plan.round_s))
    say(f"chain: {chain.rps:,.0f} req/s")

    # 2, 3: against their matched baselines, then latency at load levels
    target_23 = ">= 0.8 of baseline req/s; p99 < 20 ms at half the max rate"
    results = {}
    for pair in (view, location):
        a, b = routes.measure_pair(pair, plan, watch, rss)
        say(f"{pair.name}: {a.rps:,.0f} req/s vs {b.rps:,.0f} ({a.rps / b.rps:.2f})")
        half = routes.measure_levels(pair, plan, a.rps, b.rps, curves)
        curves.add(pair.name, _as_result(a), None)
        curves.add(pair.baseline_name, _as_result(b), None)
        results[pair.name] = (a, b, half)
        h = half.get(pair.name)
        if h is not None:
            say(f"{pair.name} at half its max: {h.rps:,.0f} req/s, p99 {h.p99_ms:.1f} ms")
    for pair in (view, location):
        a, b, half = results[pair.name]
        rows.append(routes.baseline_row(pair.baseline_name, b, half))
    rows.append(routes.baseline_row("baseline: two-hop chain aiohttp -> aiohttp -> GET (reference)",
                                    chain))
    for pair in (view, location):
        a, b, half = results[pair.name]
        rows += routes.pair_rows(pair, a, b, target=target_23, half=half, ratio_target=0.8)
    # 4, 5
    for pair in (estimates, loop):
        a, b = routes.measure_pair(pair, plan, watch, rss)
        say(f"{pair.name}: {a.rps:,.0f} req/s vs {b.rps:,.0f} ({a.rps / b.rps:.2f})")
        rows += routes.pair_rows(pair, a, b, target=">= 0.6 of baseline req/s", ratio_target=0.6)
    # 10: overload of the location route, shedding on and off
    rows += _overload_rows(cfg, system, location, work)

    # 6: dispatch end to end, closed-loop, then open-loop at stepped rates
    rows.append(_dispatch_row(cfg, system, rng))
    rows += openloop.bench_rows(gw, system.redis_url,
                                {n: p.process.pid for n, p in system.services().items()},
                                cfg.quick, rng, log=say)
    # 7: the event runner
    rows += _stream_rows(cfg, system, work)
    # 8, 9: scale and memory
    scale_rows, scale_points, memory = _scale(cfg, work, rng)
    rows += scale_rows
    rows += _memory_rows(memory, rss)
    return rows, scale_points


def _overload_rows(cfg: Config, system: BenchSystem, location: routes.Pair,
                   work: Path) -> list[Row]:
    if not load.WRK:
        say("overload: skipped, it needs wrk")
        return []
    off = overload.unlimited_gateway(system, work / "logs")
    try:
        curves = overload.measure(system.gateway.url, off.url, location.system,
                                  cfg.overload_levels, cfg.overload_s, say, system.ops_password)
    finally:
        off.stop()
    return overload.rows(curves)


def _dispatch_row(cfg: Config, system: BenchSystem, rng: random.Random) -> Row:
    async def go():
        ds, rs = await flow.prepare(system.gateway.url, cfg.dispatch_drivers,
                                    cfg.dispatch_riders, rng)
        redis = create_redis(system.redis_url)
        try:
            return await flow.run_flow(system.gateway.url, redis, ds, rs, cfg.dispatch_s, rng)
        finally:
            await redis.aclose()

    result = asyncio.run(go())
    s = flow.summary(result)
    say(f"dispatch: {s['assigned_per_s']} trips assigned/s, request->offered p50 "
        f"{s['request_to_offered_ms']['p50']} ms, ->assigned p50 "
        f"{s['request_to_assigned_ms']['p50']} ms")
    return Row(
        f"dispatch end to end ({cfg.dispatch_drivers} drivers, {cfg.dispatch_riders} riders)",
        s["assigned_per_s"], None, s["request_to_assigned_ms"]["p50"],
        s["request_to_assigned_ms"]["p99"], result.errors, number=6, unit="trips assigned/s",
        extra=s,
    )


def _stream_rows(cfg: Config, system: BenchSystem, work: Path) -> list[Row]:
    from common.embedded import EmbeddedRedis, free_port

    target = ">= 0.95 of the raw rate on the durable server; >= 300,000 events/s in memory"
    rows = []
    memory_server = EmbeddedRedis(work / "stream-redis", port=free_port(),
                                  extra_args=["--appendonly", "no"]).start()
    try:
        for label, url in (("durable server (AOF always)", system.redis_url),
                           ("in-memory server (no AOF)", memory_server.url)):
            stream = streamrate.STREAM
            streamrate.run_fill(url, stream, cfg.stream_events)
            raw, runner = [], []
            for r in range(cfg.stream_rounds):
                raw.append(streamrate.run_side("raw", url, stream, f"raw{r}", cfg.stream_events))
                runner.append(streamrate.run_side("runner", url, stream, f"runner{r}",
                                                  cfg.stream_events))
            raw_rate = sum(x["events"] for x in raw) / sum(x["seconds"] for x in raw)
            run_rate = sum(x["events"] for x in runner) / sum(x["seconds"] for x in runner)
            pending = sum(x.get("pending", 0) for x in runner)
            errors = sum(1 for x in runner if x["events"] < cfg.stream_events) + pending
            ratio = run_rate / raw_rate if raw_rate else None
            say(f"event runner, {label}: {run_rate:,.0f}/s vs raw {raw_rate:,.0f}/s")
            rows.append(Row(f"baseline: raw XREADGROUP+XACK, {label}", round(raw_rate, 1), 1.0,
                            None, None, 0, number=7, unit="events/s",
                            extra={"rounds": [round(x["rate"]) for x in raw],
                                   "cpu_us_per_event": [round(x["cpu_us_per_event"], 2)
                                                        for x in raw]}))
            rows.append(Row(
                f"event runner (StreamConsumer), {label}", round(run_rate, 1),
                round(ratio, 3) if ratio else None, None, None, errors,
                baseline=f"baseline: raw XREADGROUP+XACK, {label}", number=7, unit="events/s",
                target=target,
                met=bool(errors == 0 and ratio and (ratio >= 0.95 if "durable" in label
                                                     else run_rate >= 300_000)),
                extra={"rounds": [round(x["rate"]) for x in runner],
                       "cpu_us_per_event": [round(x["cpu_us_per_event"], 2) for x in runner],
                       "batch": streamrate.RUNNER_BATCH, "record_deliveries": False},
            ))
    finally:
        memory_server.stop()
    return rows


def _scale(cfg: Config, work: Path, rng: random.Random) -> tuple[list[Row], list[dict], dict]:
    bench = ScaleBench(work, cfg.scale_samples, rng)
    samples = asyncio.run(bench.run(cfg.scale_drivers, cfg.scale_pending, log=say))
    points = [s.as_dict() for s in samples]
    rows = []
    base: dict[str, float] = {}
    names = {
        "geosearch_3km": "reference: one fixed 3 km GEOSEARCH, {n:,} drivers",
        "drivers": "choose+offer a new trip, {n:,} online drivers",
        "pending": "driver freed: choose+offer the oldest trip near, {n:,} waiting",
    }
    targets = {"drivers": "<= 2x the cost at the smallest size",
               "pending": "<= 2x the cost at the smallest size"}
    for s in samples:
        base.setdefault(s.kind, s.p50)
        ratio = s.p50 / base[s.kind] if base[s.kind] else None
        met = None
        if s.kind in targets and s.n != min(x.n for x in samples if x.kind == s.kind):
            met = bool(ratio is not None and ratio <= 2.0 and s.errors == 0)
        rows.append(Row(names[s.kind].format(n=s.n), round(1000 / s.as_dict()["mean_ms"], 1)
                        if s.times_ms else None,
                        round(ratio, 3) if ratio else None, round(s.p50, 3), round(s.p99, 3),
                        s.errors, baseline="the same at the smallest size (cost ratio)", number=8,
                        unit="operations/s (one at a time)", target=targets.get(s.kind),
                        met=met, extra=s.as_dict()))
        say(f"scale {s.kind} {s.n:,}: p50 {s.p50:.2f} ms, p99 {s.p99:.2f} ms")
    return rows, points, bench.memory


# Redis bytes per waiting trip and per online driver before the documents,
# event lists and their members were made compact (bench.memory, the same
# measure, 100,000 drivers and 10,000 trips): the target is half of each.
MEMORY_BEFORE_B = {"trip": 3_681, "driver": 2_433}


def _halved(measured: dict, kind: str) -> bool | None:
    used = measured.get("used_memory_b")
    return None if not used else used <= MEMORY_BEFORE_B[kind] // 2


def _memory_rows(memory: dict, rss: dict[str, int]) -> list[Row]:
    trips = memory.get("trips") or {}
    drivers = memory.get("drivers") or {}
    mib = {k: round(v / 2**20, 1) for k, v in rss.items()}
    t_parts, d_parts = trips.get("parts_b") or {}, drivers.get("parts_b") or {}
    return [
        Row(f"memory: {trips.get('used_memory_b', 0):,} B of Redis per waiting trip "
            f"(document {t_parts.get('document', 0):,} B, event list "
            f"{t_parts.get('event_list', 0):,} B, stream {t_parts.get('stream', 0):,} B)",
            None, None, None, None, 0, number=9, unit="bytes", extra=trips,
            target=f"<= {MEMORY_BEFORE_B['trip'] // 2:,} B (half of {MEMORY_BEFORE_B['trip']:,})",
            met=_halved(trips, "trip")),
        Row(f"memory: {drivers.get('used_memory_b', 0):,} B of Redis per online driver "
            f"(document {d_parts.get('document', 0):,} B, stream {d_parts.get('stream', 0):,} B)",
            None, None, None, None, 0, number=9, unit="bytes", extra=drivers,
            target=f"<= {MEMORY_BEFORE_B['driver'] // 2:,} B (half of "
                   f"{MEMORY_BEFORE_B['driver']:,})",
            met=_halved(drivers, "driver")),
        Row("memory: MiB resident under load: " + ", ".join(
            f"{k.split('_')[0]} {v:.0f}" for k, v in mib.items()),
            None, None, None, None, 0, number=9, unit="MiB", extra=mib),
    ]


CHAIN_KEY = "bench:chain"


async def _chain_key(url: str, trip_id: str) -> None:
    """A string of the size of a trip document, for the two-hop chain."""
    from common import keys

    redis = create_redis(url)
    try:
        raw = await redis.execute_command("JSON.GET", keys.trip(trip_id))
        await redis.set(CHAIN_KEY, raw)
    finally:
        await redis.aclose()


def _as_result(r: routes.Rounds) -> load.LoadResult:
    return load.LoadResult(int(r.rps * 1000), 1000.0, r.p50, r.p99, r.errors, load.tool_name())


if __name__ == "__main__":
    sys.exit(main())
