"""What WAIT_REPLICAS=1 costs per write, on the replicated embedded cluster
(3 shards, each a primary with 2 replicas, AOF `always` everywhere).

The stores of the services (the code behind the routes, without HTTP) make
the same writes with WAIT_REPLICAS=0 and =1, one at a time, so the figure
is the latency a write gains: a trip request followed by its cancel (two
confirmed scripts), and a driver's location fix (never waited for: each fix
is replaced by the next within seconds, so both figures should agree).
Then the failover window as a client sees it: a shard's primary killed, then
another frozen, while four writers keep writing to it with WAIT 1 (the
gateway-level window is measured by tests/proofs/test_proof_failover.py).

    python -m bench.replication            # prints the table, writes reports/replication.json
    BENCH_QUICK=1 python -m bench.replication
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson

from common import ids
from common.embedded_cluster import EmbeddedCluster
from common.redisconn import create_redis
from common.scripts import write_and_wait
from driver_service.settings import DriverSettings
from driver_service.store import DriverStore
from trip_service.settings import TripSettings
from trip_service.store import TripStore

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "replication.json"
REGIONS = [{"name": "sf", "min_lat": 37.70, "min_lon": -122.52, "max_lat": 37.83,
            "max_lon": -122.35}]
PICKUP = {"lat": 37.7749, "lon": -122.4194}
DROPOFF = {"lat": 37.7955, "lon": -122.3937}
CAR = {"make": "Toyota", "model": "Prius", "color": "blue", "plate": "7ABC123", "seats": 4}


def ms(values: list[float]) -> dict:
    values = sorted(values)
    return {"p50_ms": round(statistics.median(values) * 1000, 2),
            "p99_ms": round(values[int(len(values) * 0.99) - 1] * 1000, 2),
            "mean_ms": round(statistics.fmean(values) * 1000, 2)}


async def measure(url: str, wait_replicas: int, n: int) -> dict:
    env = {"REGIONS": orjson.dumps(REGIONS).decode()}
    given = {"redis_url": url, "wait_replicas": wait_replicas}
    trip_settings = TripSettings.from_env(env=env, **given)
    driver_settings = DriverSettings.from_env(env=env, **given)
    redis = create_redis(url)
    try:
        trips, drivers = TripStore(redis, trip_settings), DriverStore(redis, driver_settings)
        driver_id = ids.new_id(ids.DRIVER, "sf")
        await drivers.register(driver_id, "Bea", "Bench", CAR, "standard")
        await drivers.go_online(driver_id)
        pairs, fixes = [], []
        for i in range(n):
            rider = ids.new_id(ids.RIDER, "sf")
            t0 = time.perf_counter()
            trip = await trips.request(rider, "standard", PICKUP, DROPOFF, None)
            await trips.cancel(trip["id"], rider, None)
            pairs.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await drivers.update_location(driver_id, PICKUP["lat"] + i * 1e-5, PICKUP["lon"],
                                          None, None)
            fixes.append(time.perf_counter() - t0)
        return {"create_cancel": ms(pairs), "location": ms(fixes)}
    finally:
        await redis.aclose()


async def failover_window(cluster: EmbeddedCluster, kind: str) -> dict:
    """A client writing (WAIT 1) to one shard without pause while its primary
    is killed or frozen: from the fault to the first confirmed write of one
    sent after it, and to the cluster's promotion."""
    redis = create_redis(cluster.url)
    key = "rh:{sf}:bench-failover"
    shard = cluster.shard_of_key(key)
    answers: list[tuple[float, float]] = []
    stop = asyncio.Event()
    answered = asyncio.Event()  # set by each confirmed write

    async def writer() -> None:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                reply, waited = await write_and_wait(redis, key, ("SET", key, "x"), 1)
                if not isinstance(reply, Exception) and not isinstance(waited, Exception) \
                        and int(waited[1]) >= 1:
                    answers.append((sent, time.monotonic()))
                    answered.set()
            except Exception:  # the outage itself: 503s and timeouts
                await asyncio.sleep(0.01)

    try:
        await redis.set(key, "x")
        tasks = [asyncio.create_task(writer()) for _ in range(4)]
        await asyncio.sleep(0.5)
        victim = cluster.primary(shard)
        start = time.monotonic()
        victim.freeze() if kind == "freeze" else victim.kill()
        await asyncio.to_thread(cluster.wait_primary_other_than, shard, victim.port)
        promoted = time.monotonic() - start
        while not [a for s, a in answers if s >= start]:
            answered.clear()
            await answered.wait()
        window = min(a for s, a in answers if s >= start) - start
        stop.set()
        await asyncio.gather(*tasks)
        victim.thaw() if kind == "freeze" else victim.start()
        await asyncio.to_thread(cluster.wait_converged)
        return {"window_s": round(window, 3), "promoted_after_s": round(promoted, 3)}
    finally:
        stop.set()
        await redis.aclose()


async def run(n: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-replication-") as folder:
        cluster = await asyncio.to_thread(
            EmbeddedCluster(Path(folder), masters=3, replicas=2).start)
        try:
            results = {}
            # Alternated, twice, so that a slow moment of the machine does not
            # land on one side only.
            for round_ in range(2):
                for wait in (0, 1):
                    got = await measure(cluster.url, wait, n)
                    for k, v in got.items():
                        results.setdefault(f"wait{wait}", {}).setdefault(k, []).append(v)
            windows = {kind: await failover_window(cluster, kind) for kind in ("kill", "freeze")}
        finally:
            await asyncio.to_thread(cluster.stop)
    out = {"failover": windows}
    for side, kinds in results.items():
        out[side] = {k: {m: round(statistics.fmean(r[m] for r in runs), 2) for m in runs[0]}
                     for k, runs in kinds.items()}
    out["wait_cost_per_write_ms"] = {
        # A create+cancel is two confirmed writes.
        "create_cancel_pair_p50": round(out["wait1"]["create_cancel"]["p50_ms"]
                                        - out["wait0"]["create_cancel"]["p50_ms"], 2),
        "per_write_p50": round((out["wait1"]["create_cancel"]["p50_ms"]
                                - out["wait0"]["create_cancel"]["p50_ms"]) / 2, 2),
        "location_p50": round(out["wait1"]["location"]["p50_ms"]
                              - out["wait0"]["location"]["p50_ms"], 2),
    }
    out["writes_per_side"] = n * 2
    return out


def main() -> int:
    n = 50 if os.environ.get("BENCH_QUICK") else 300
    out = asyncio.run(run(n))
    print(f"{'':24}{'WAIT_REPLICAS=0':>18}{'WAIT_REPLICAS=1':>18}")
    for kind in ("create_cancel", "location"):
        for m in ("p50_ms", "p99_ms", "mean_ms"):
            print(f"{kind + ' ' + m:24}{out['wait0'][kind][m]:>18}{out['wait1'][kind][m]:>18}")
    print(f"cost of the wait: {json.dumps(out['wait_cost_per_write_ms'])}")
    print(f"failover window (a client writing with WAIT 1): {json.dumps(out['failover'])}")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(out, indent=2) + "\n")
    print(f"(written to {REPORT})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
