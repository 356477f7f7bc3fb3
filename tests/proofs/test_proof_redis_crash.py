"""kill -9 of Redis under load loses nothing that any client saw acknowledged.

Riders and drivers call the public API concurrently (sign-ups, logins,
logouts, trip requests with Idempotency-Key, cancels, accepts, the trip to its
end). At a random moment Redis is killed with SIGKILL and started again on
the same data; the clients ride out the outage, retrying as apps do. Then the
database is held to the ledger of every write any client saw acknowledged
(tests/proofs/checker.py): nothing lost, every trip's document, ranking,
indexes, event list and stream agree, nothing there that nobody attempted.

One round kills Redis while it rewrites its AOF (BGREWRITEAOF, slowed down so
the kill lands inside the rewrite). A control run without persistence must
show losses that the same checker finds: the checker can fail.
"""

from __future__ import annotations

import asyncio
import random

import aiohttp
import orjson
import psutil
import pytest

from common import keys
from common.ids import TRIP, new_id
from common.redisconn import create_redis
from common.trip.document import expand
from tests.waiting import eventually

from tests.proofs.checker import check
from tests.proofs.load import Ledger, Load
from tests.proofs.support import ProofSystem, ready, record_figures, start_proof_system

pytestmark = pytest.mark.slow

# Seeds of the rounds: each picks its own kill point and client behaviour.
ROUNDS = [(101, False), (202, False), (303, True), (404, False), (505, False), (606, True)]
# Acknowledged writes the load makes before the kill point and after the restart.
WARMUP_ACKS = 40
RECOVERY_ACKS = 40


@pytest.fixture(scope="module")
def crash_system(tmp_path_factory):
    s = start_proof_system(tmp_path_factory.mktemp("redis-crash"))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ledger() -> Ledger:
    return Ledger()


@pytest.fixture(scope="module")
def tally() -> dict:
    return {"kills": 0, "kills_during_rewrite": 0, "rounds": []}


async def _acks_beyond(ledger: Ledger, n: int) -> None:
    target = ledger.acked_writes + n
    await eventually(lambda: ledger.acked_writes >= target, timeout=60, interval=0.05,
                     message=f"the load did not reach {target} acknowledged writes")


def _rewrite_children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


async def kill_redis(ps: ProofSystem, *, during_rewrite: bool) -> bool:
    """SIGKILL the server (inside an AOF rewrite if asked); True if a rewrite was running."""
    rewriting = False
    if during_rewrite:
        admin = create_redis(ps.redis.url)
        try:
            # Slow the rewrite (1 ms per key) so the kill lands inside it.
            await admin.config_set("rdb-key-save-delay", 1000)
            await admin.bgrewriteaof()
            info = await admin.info("persistence")
            rewriting = bool(info.get("aof_rewrite_in_progress"))
        finally:
            await admin.aclose()
    children = _rewrite_children(ps.redis.process.pid)
    ps.redis.kill()
    for child in children:  # the rewrite child, orphaned by the kill
        try:
            child.kill()
            child.wait(5)
        except psutil.NoSuchProcess:
            pass
    return rewriting


async def run_round(ps: ProofSystem, ledger: Ledger, seed: int, during_rewrite: bool,
                    tally: dict | None = None) -> dict:
    rng = random.Random(seed)
    load = Load(ps.url, ledger, rng, riders=10, drivers=6)
    await load.start()
    try:
        await _acks_beyond(ledger, WARMUP_ACKS)
        # The kill point: a random moment of the running load.
        await asyncio.sleep(rng.uniform(0.0, 2.0))
        acked_at_kill = ledger.acked_writes
        rewriting = await kill_redis(ps, during_rewrite=during_rewrite)
        await asyncio.to_thread(ps.redis.start)
        async with aiohttp.ClientSession() as http:
            await eventually(lambda: ready(ps.url, http), timeout=30, interval=0.1,
                             message="the system did not become ready after the restart")
        # The system works again: new writes are acknowledged after the restart.
        await _acks_beyond(ledger, RECOVERY_ACKS)
    finally:
        await load.finish()
    return {"seed": seed, "acked_at_kill": acked_at_kill, "rewriting": rewriting}


@pytest.mark.parametrize("seed,during_rewrite", ROUNDS,
                         ids=[f"seed{s}{'-rewrite' if r else ''}" for s, r in ROUNDS])
async def test_kill_9_of_redis_under_load_loses_no_acknowledged_write(
    crash_system, ledger, tally, seed, during_rewrite
):
    outcome = await run_round(crash_system, ledger, seed, during_rewrite)
    if during_rewrite:
        assert outcome["rewriting"], "the kill did not land inside the AOF rewrite"
    redis = create_redis(crash_system.redis.url)
    try:
        report = await check(redis, ledger)
    finally:
        await redis.aclose()
    tally["kills"] += 1
    tally["kills_during_rewrite"] += int(outcome["rewriting"])
    tally["rounds"].append({**outcome, "checked": report.checked, "lost": len(report.lost),
                            "inconsistent": len(report.inconsistent),
                            "unattempted": len(report.unattempted),
                            "trips": report.trips_seen})
    record_figures("redis_kill_9", {
        "kills_survived": tally["kills"] if report.clean else tally["kills"] - 1,
        "kills_during_aof_rewrite": tally["kills_during_rewrite"],
        "acknowledged_writes_checked": report.checked,
        "acknowledged_writes_total": ledger.acked_writes,
        "client_calls": ledger.attempts,
        "client_calls_failed": ledger.failures,
        "lost": len(report.lost),
        "inconsistent": len(report.inconsistent),
        "unattempted": len(report.unattempted),
        "trips": report.trips_seen,
        "trips_acknowledged": len(ledger.trips),
        "ratings_acknowledged": len(ledger.ratings),
        "sessions_acknowledged": len(ledger.sessions) + len(ledger.logged_out),
        "accounts_acknowledged": len(ledger.accounts),
        "rounds": tally["rounds"],
    })
    print(f"\nround {seed}: {report.summary()}")
    assert report.clean, report.details()


async def test_control_without_persistence_the_checker_finds_the_losses(tmp_path_factory):
    """The same load and checker against a Redis without AOF: a kill -9 loses
    acknowledged writes, and the checker must say so."""
    ps = start_proof_system(tmp_path_factory.mktemp("redis-control"),
                            redis_args=["--appendonly", "no"])
    ledger = Ledger()
    try:
        load = Load(ps.url, ledger, random.Random(707), riders=6, drivers=4)
        await load.start()
        try:
            await _acks_beyond(ledger, WARMUP_ACKS)
            await kill_redis(ps, during_rewrite=False)
            await asyncio.to_thread(ps.redis.start)
        finally:
            await load.finish()
        redis = create_redis(ps.redis.url)
        try:
            report = await check(redis, ledger)
        finally:
            await redis.aclose()
    finally:
        await asyncio.to_thread(ps.stop)
    record_figures("redis_kill_9_control_no_persistence", {
        "acknowledged_writes_checked": report.checked,
        "lost_detected": len(report.lost),
        "inconsistent_detected": len(report.inconsistent),
    })
    print(f"\ncontrol: {report.summary()}")
    assert report.lost, "the checker found no loss where persistence was off"
    assert len(report.lost) >= report.checked // 2, report.summary()


async def test_the_checker_notices_each_kind_of_damage(crash_system, ledger):
    """Damage the database of the crash rounds one way at a time: a lost
    trip, a ranking entry left by a finished trip, a trip nobody requested,
    an event missing from the stream. Each is reported. (Runs last in the
    module: the last damage is not repaired.)"""
    if not ledger.trips:
        pytest.skip("needs the crash rounds of this module")
    redis = create_redis(crash_system.redis.url)
    try:
        assert (await check(redis, ledger)).clean
        trip_id = next(t for t, ack in ledger.trips.items() if ack.status == "completed")
        key = keys.trip(trip_id)
        ranking = keys.pending("sf", "standard")

        saved = await redis.dump(key)
        await redis.delete(key)
        report = await check(redis, ledger)
        await redis.restore(key, 0, saved)
        assert any(trip_id in x for x in report.lost), report.summary()

        await redis.zadd(ranking, {trip_id: 1})
        report = await check(redis, ledger)
        await redis.zrem(ranking, trip_id)
        assert any(trip_id in x and "ranking entry left" in x for x in report.inconsistent), \
            report.summary()

        doc = expand(orjson.loads(await redis.execute_command("JSON.GET", key)))
        stray = {**doc, "id": new_id(TRIP, "sf"), "dropoff": {"lat": 37.8, "lon": -122.4}}
        await redis.execute_command("JSON.SET", keys.trip(stray["id"]), "$", orjson.dumps(stray))
        report = await check(redis, ledger)
        await redis.delete(keys.trip(stray["id"]))
        assert any(stray["id"] in x for x in report.unattempted), report.summary()

        assert (await check(redis, ledger)).clean
        entries = [sid for sid, f in await redis.xrange(keys.events("sf"))
                   if f.get("trip_id") == trip_id]
        await redis.xdel(keys.events("sf"), entries[-1])
        report = await check(redis, ledger)
        assert any(trip_id in x and "event list" in x for x in report.inconsistent), \
            report.summary()
    finally:
        await redis.aclose()
