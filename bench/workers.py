"""Processes per core: one gateway process against two sharing its port.

    python -m bench.workers [seconds] [rounds]

The system and its baselines start with two processes of the gateway (and
two of the baseline's front) on one port each (`REUSE_PORT=1`: the kernel
spreads new connections among them). Each round measures the trip view and
the location route with both processes, then with one (the second stopped;
the kernel sends every connection to the one left), each beside its
baseline with the same number of front processes, under wrk at 16 and 32
connections. One line per run: requests/s, p99, the ratio to the baseline
of the same run, and the CPU microseconds per request of every process.
Rounds alternate, so the machine's noise falls on both sides alike.
"""

from __future__ import annotations

import random
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import psutil


from . import load, routes
from .cpu import seed_small
from .system import BenchSystem

CONNECTIONS = (16, 32)


def _cpu(procs: dict[str, psutil.Process]) -> dict[str, float]:
    out = {}
    for name, p in procs.items():
        try:
            out[name] = sum(p.cpu_times()[:2])
        except psutil.NoSuchProcess:  # a stopped second process
            pass
    return out


def _ok_rps(result: load.LoadResult) -> float:
    """Answers of the route's own status per second (a shed 503 is no work done)."""
    ok = result.requests - result.errors
    return ok / result.duration_s if result.duration_s else 0.0


def _measure(url: str, spec, connections: int, seconds: float,
             procs: dict[str, psutil.Process]) -> tuple[load.LoadResult, dict[str, float]]:
    before = _cpu(procs)
    result = load.run(url, spec, connections=connections, duration_s=seconds)
    after = _cpu(procs)
    n = max(result.requests, 1)
    per = {k: (after[k] - before[k]) / n * 1e6 for k in after
           if k in before and after[k] - before[k] > 0.01}
    return result, per


def main(argv: list[str]) -> None:
    seconds = float(argv[0]) if argv else 4.0
    rounds = int(argv[1]) if len(argv) > 1 else 2
    work = Path(tempfile.mkdtemp(prefix="ridehail-workers-"))
    system = BenchSystem(work, workers=2).start()
    ratios: dict[tuple[str, int, int], list[float]] = {}
    try:
        seeded = seed_small(system)
        gw, front = system.gateway.url, system.front.url
        pairs = {"view": routes.view_pair(seeded, gw, front),
                 "location": routes.location_pair(seeded, gw, front, random.Random(5))}
        print(f"load generator: {load.tool_name()}; {psutil.cpu_count()} cores")
        for _ in range(rounds):
            for workers in (2, 1):
                if workers == 1:
                    for proc in system.extra:
                        proc.stop()
                else:
                    for proc in system.extra:
                        if proc.process is None or proc.process.poll() is not None:
                            proc.start(timeout=30)
                procs = {name: psutil.Process(p.process.pid)
                         for name, p in {**system.services(), **system.baselines()}.items()
                         if p.process is not None and p.process.poll() is None}
                procs["redis"] = psutil.Process(system.redis.process.pid)
                for name, pair in pairs.items():
                    for connections in CONNECTIONS:
                        route, cpu_r = _measure(pair.system_url, pair.system, connections,
                                                seconds, procs)
                        base, cpu_b = _measure(pair.baseline_url, pair.baseline, connections,
                                               seconds, procs)
                        ratio = _ok_rps(route) / _ok_rps(base) if _ok_rps(base) else 0.0
                        ratios.setdefault((name, workers, connections), []).append(ratio)
                        print(f"{name} {workers} gateway process(es), {connections} conns: "
                              f"{_ok_rps(route):,.0f} req/s p99 {route.p99_ms:.1f} ms "
                              f"(errors {route.errors}); baseline {_ok_rps(base):,.0f} req/s "
                              f"p99 {base.p99_ms:.1f} ms; ratio {ratio:.2f}")
                        print("    CPU us/request: "
                              + ", ".join(f"{k} {v:.0f}" for k, v in cpu_r.items())
                              + " | baseline: "
                              + ", ".join(f"{k} {v:.0f}" for k, v in cpu_b.items()))
        print("\nratio to the baseline (median of rounds):")
        for (name, workers, connections), values in sorted(ratios.items()):
            print(f"  {name:8} {workers} process(es) {connections:3} conns: "
                  f"{statistics.median(values):.2f}  ({', '.join(f'{v:.2f}' for v in values)})")
    finally:
        system.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
