"""Where a route's CPU goes: CPU microseconds per request of every process
(gateway, services, Redis) beside its matched baseline's processes, and the
Redis commands per request with their server time.

    python -m bench.cpu location|view|estimates|create [seconds] [rounds]

Starts the benchmark's system and baselines (bench.system), seeds them like
`make bench` does, then alternates the route and its baseline under wrk (or
the asyncio client) and prints one line per run. The per-process figures
add up to the machine's cost of a request, without the load generator's.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import sys
import tempfile
from pathlib import Path

import psutil
import redis

from common.redisconn import create_redis

from . import load, routes
from .seed import Seeded, seed
from .system import BenchSystem


def _cpu_s(procs: dict[str, psutil.Process]) -> dict[str, float]:
    return {name: sum(p.cpu_times()[:2]) for name, p in procs.items()}


def _commands(admin: redis.Redis, requests: int) -> str:
    """Redis commands per request and their server time (INFO commandstats)."""
    stats = admin.info("commandstats")
    rows = sorted(stats.items(), key=lambda kv: -kv[1]["usec"])
    return ", ".join(
        f"{name.removeprefix('cmdstat_')} {v['calls'] / requests:.2f}x{v['usec_per_call']:.1f}us"
        for name, v in rows if v["calls"] >= requests * 0.05
    )


def seed_small(system: BenchSystem, loop_riders: int = 1) -> Seeded:
    """The accounts and trips the route pairs need, a few of each (as `make
    bench` seeds them, smaller); the create + cancel loop wants a rider or
    two per connection."""
    async def go() -> Seeded:
        client = create_redis(system.redis_url)
        try:
            return await seed(system.gateway.url, client, view=8, location=8,
                              loop_riders=loop_riders, rng=random.Random(3))
        finally:
            await client.aclose()

    return asyncio.run(go())


def main(argv: list[str]) -> None:
    which = argv[0] if argv else "location"
    seconds = float(argv[1]) if len(argv) > 1 else 4.0
    rounds = int(argv[2]) if len(argv) > 2 else 2
    work = Path(tempfile.mkdtemp(prefix="ridehail-cpu-"))
    system = BenchSystem(work).start()
    try:
        seeded = seed_small(system, loop_riders=32 if which == "create" else 1)
        gw, front = system.gateway.url, system.front.url
        rng = random.Random(5)
        location = routes.location_pair(seeded, gw, front, rng)
        pair = {
            "location": lambda: location,
            "view": lambda: routes.view_pair(seeded, gw, front),
            "estimates": lambda: routes.estimates_pair(seeded, gw, front, rng),
            "create": lambda: routes.create_cancel_pair(seeded, gw, front, rng, location),
        }[which]()
        procs = {name: psutil.Process(p.process.pid)
                 for name, p in {**system.services(), **system.baselines()}.items()}
        procs["redis"] = psutil.Process(system.redis.process.pid)
        admin = redis.Redis.from_url(system.redis_url, decode_responses=True)
        print(f"load generator: {load.tool_name()}")
        for _ in range(rounds):
            for side, url, spec in (("route", pair.system_url, pair.system),
                                    ("baseline", pair.baseline_url, pair.baseline)):
                admin.config_resetstat()
                before = _cpu_s(procs)
                result = load.run(url, spec, connections=16, duration_s=seconds)
                after = _cpu_s(procs)
                n = max(result.requests, 1)
                per = {k: (after[k] - before[k]) / n * 1e6 for k in procs
                       if after[k] - before[k] > 0.01}
                shown = ", ".join(f"{k} {v:.0f}" for k, v in per.items())
                print(f"{which} {side}: {result.rps:,.0f} req/s; CPU us per request: {shown}; "
                      f"total {sum(per.values()):.0f}")
                print(f"    redis: {_commands(admin, n)}")
                if side == "route" and pair.after_round is not None:
                    pair.after_round()
        admin.close()
    finally:
        system.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
