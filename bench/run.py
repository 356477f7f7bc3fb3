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

from . import load, routes
from .results import Row, draw_chart, table, write_json
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
    scale_drivers: tuple[int, ...]
    scale_pending: tuple[int, ...]
    scale_samples: int
    memory_trips: int

    @classmethod
    def from_env(cls) -> "Config":
        if env_flag("BENCH_QUICK"):
            return cls(
                quick=True, view_riders=8, location_drivers=8, loop_riders=32,
                plan=Plan(rounds=1, round_s=1.0, connections=8, level_s=1.0, levels=(0.5,)),
                chain_rounds=1, dispatch_s=3.0, dispatch_drivers=10, dispatch_riders=8,
                stream_events=20_000, scale_drivers=(1_000, 2_000), scale_pending=(100, 300),
                scale_samples=10, memory_trips=200,
            )
        return cls(
            quick=False, view_riders=128, location_drivers=64, loop_riders=96,
            plan=Plan(rounds=3, round_s=5.0, connections=16, level_s=3.0,
                      levels=(0.25, 0.5, 0.75)),
            chain_rounds=2, dispatch_s=20.0, dispatch_drivers=100, dispatch_riders=60,
            stream_events=600_000, scale_drivers=(1_000, 10_000, 100_000),
            scale_pending=(100, 10_000), scale_samples=60, memory_trips=2_000,
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
        rows, scale_points = _run_all(cfg, system, curves)
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


def _run_all(cfg: Config, system: BenchSystem, curves: Curves) -> tuple[list[Row], list[dict]]:
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
    say(f"seeded {len(seeded.view_riders)} assigned trips, {len(seeded.location_drivers)} "
        f"online drivers, {len(seeded.loop_riders)} loop riders in {time.monotonic() - t0:.0f} s")

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

    target_23 = ">= 0.7 of baseline req/s; p99 < 20 ms at half the max rate"
    results = {}
    for pair in (view, location):
        a, b = routes.measure_pair(pair, plan, watch, rss)
        say(f"{pair.name}: {a.rps:,.0f} req/s vs {b.rps:,.0f} ({a.rps / b.rps:.2f})")
        half = routes.measure_levels(pair, plan, a.rps, b.rps, curves)
        curves.add(pair.name, _as_result(a), None)
        curves.add(pair.baseline_name, _as_result(b), None)
        results[pair.name] = (a, b, half)
    for pair in (view, location):
        a, b, half = results[pair.name]
        rows.append(routes.baseline_row(pair.baseline_name, b, half))
    rows.append(routes.baseline_row("baseline: two-hop chain (reference)", chain))
    for pair in (view, location):
        a, b, half = results[pair.name]
        rows += routes.pair_rows(pair, a, b, target=target_23, half=half, ratio_target=0.7)
    for pair in (estimates, loop):
        a, b = routes.measure_pair(pair, plan)
        say(f"{pair.name}: {a.rps:,.0f} req/s vs {b.rps:,.0f} ({a.rps / b.rps:.2f})")
        rows += routes.pair_rows(pair, a, b)
    rows.append(Row("service resident memory under load (MiB)", None, None, None, None, 0,
                    unit="MiB", extra={k: round(v / 2**20, 1) for k, v in rss.items()}))
    return rows, []


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
