"""A primary dies or hangs, a replica takes over, nothing acknowledged is lost.

The system runs on Redis Cluster of three shards, each a primary with two
replicas (common.embedded_cluster.EmbeddedCluster, node timeout 1 s, AOF `always`),
with WAIT_REPLICAS=1: a write is answered only once a replica has it in its
AOF. Riders and drivers call the public API concurrently (tests/proofs/load.py)
while, round after round:

- the primary of a shard is killed (SIGKILL), every shard in turn, and
  started again on its own data, as an orchestrator would: it rejoins as a
  replica of the new primary;
- the same with the victim's replicas lagging when it dies: both are frozen
  (SIGSTOP) and the primary's replication links closed (CLIENT KILL TYPE
  replica), so for 0.7 s under load it takes writes no replica has; then it
  is killed and the replicas resume;
- a primary is frozen (SIGSTOP) for several node timeouts, a replica is
  promoted, and the old primary resumes (SIGCONT): a write a stale client
  queued to it must be refused or confirmed by no replica, and kept by no
  node; it must rejoin as a replica with the new primary's data.

After the rounds the database is held to the ledger of every acknowledged
write (tests/proofs/checker.py): nothing lost, trip documents, rankings and
events agree, no event lost or applied twice; the consumer groups drain; an
ops SSE client gets live events after every failover; no answer other than
2xx/4xx/503/504 (or no answer at all, while the gateway waits). A control
run with WAIT_REPLICAS=0 and lagging replicas must lose acknowledged writes,
which the same checker finds.

Figures: the unavailability window of each failover, from the kill (or
freeze) to the first acknowledged write of a request sent after it, through
the gateway (p50, max; target p50 < 2 s, max < 3 s).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import socket
import statistics
import time

import aiohttp
import orjson
import pytest
import redis as redis_sync

from common import keys
from common.embedded_cluster import EmbeddedCluster
from common.redisconn import create_redis
from tests.client import OPS_PASSWORD, OPS_USER, SseReader, rider_body
from tests.harness import System
from tests.proofs.checker import check, existing, groups_drained
from tests.proofs.load import Ledger, Load, WriteAnswer, token_digest
from tests.proofs.support import PROOF_ENV, proof_client, ready, record_figures
from tests.waiting import eventually

# A long proof: a cluster of nine nodes, eight failovers under load, a control.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

REGIONS = [
    {"name": "sf", "min_lat": 37.70, "min_lon": -122.52, "max_lat": 37.83, "max_lon": -122.35},
]
WARMUP_ACKS = 30
RECOVERY_ACKS = 30
# Replicas held back before the kill in a lagging round.
LAG_S = 0.7
# A frozen primary stays frozen this long: several node timeouts.
FREEZE_S = 4.0
# The windows the failover must stay within (with a 1 s node timeout).
WINDOW_P50_S = 2.0
WINDOW_MAX_S = 3.0
# A probe sign-up goes out this often during a failover.
PROBE_EVERY_S = 0.05
ALLOWED = {0, 503, 504}  # besides 2xx and 4xx; 0: no answer (client timeout)


def sf_shard(cluster: EmbeddedCluster) -> int:
    return cluster.shard_of_key(keys.events("sf"))


class OpsFeed:
    """An ops client reading /v1/ops/events all along, reconnecting when the
    stream ends or fails (as the dashboard does): when each event arrived."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.arrivals: list[float] = []
        self.errors: list[str] = []
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        api = proof_client(self._session, self.base)
        reply = await api.call("POST", "/v1/sessions",
                               {"user_name": OPS_USER, "password": OPS_PASSWORD})
        assert reply.status == 201, reply
        self._token = reply.body["token"]
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        headers = {"Authorization": f"Bearer {self._token}", "Accept": "text/event-stream"}
        while True:
            try:
                async with self._session.get(f"{self.base}/v1/ops/events", headers=headers,
                                             timeout=aiohttp.ClientTimeout(total=None)) as resp:
                    if resp.status != 200:
                        self.errors.append(f"status {resp.status}")
                        await asyncio.sleep(0.2)
                        continue
                    reader = SseReader(resp)
                    while (message := await reader.next()) is not None:
                        if message.get("event") not in (None, "", "ping"):
                            self.arrivals.append(time.monotonic())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.errors.append(repr(exc)[:200])
                await asyncio.sleep(0.2)

    def since(self, moment: float) -> int:
        return sum(1 for t in self.arrivals if t > moment)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._session.close()


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    base = tmp_path_factory.mktemp("failover")
    cluster = EmbeddedCluster(base / "redis", masters=3, replicas=2).start()
    systems: list[System] = []
    yield cluster, base, systems
    for s in systems:
        s.stop()
    cluster.stop()


def start_services(cluster: EmbeddedCluster, base, systems: list, wait_replicas: int) -> System:
    env = {**PROOF_ENV, "REGIONS": orjson.dumps(REGIONS).decode(),
           "WAIT_REPLICAS": str(wait_replicas)}
    logs = base / f"logs-wait{wait_replicas}"
    logs.mkdir(exist_ok=True)
    system = System(cluster.url, logs, env=env)
    systems.append(system)
    system.start()
    return system


def keys_written(w: WriteAnswer) -> list[str]:
    """A key each acknowledged write call wrote (enough to name its shards)."""
    path = w.path
    if path == "/v1/sessions" and isinstance(w.reply, dict) and "token" in w.reply:
        return [keys.session(token_digest(w.reply["token"]))]
    if path == "/v1/sessions/current" and w.token:
        return [keys.session(token_digest(w.token))]
    if path in ("/v1/riders", "/v1/drivers") and w.body:
        return [keys.account(w.body["user_name"])]
    if path.startswith(("/v1/trips", "/v1/drivers/me")):
        return [keys.events("sf")]  # trips, offers, locations: the region's slot
    return []


def on_shard(cluster: EmbeddedCluster, shard: int):
    return lambda w: any(cluster.shard_of_key(k) == shard for k in keys_written(w))


def cut_replication(primary) -> None:
    client = redis_sync.Redis(host="127.0.0.1", port=primary.port, socket_timeout=2)
    try:
        client.execute_command("CLIENT", "KILL", "TYPE", "replica")
    finally:
        client.close()


def queue_stale_write(cluster: EmbeddedCluster, node, shard: int) -> tuple[str, socket.socket]:
    key = next(f"rh:{{stale{i}}}:probe" for i in range(10_000)
               if cluster.shard_of_key(f"rh:{{stale{i}}}:probe") == shard)
    sock = socket.create_connection(("127.0.0.1", node.port), timeout=10)
    sock.sendall(resp("SET", key, "stale") + resp("WAIT", "1", "500"))
    return key, sock


def resp(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        out.append(f"${len(a.encode())}\r\n{a}\r\n".encode())
    return b"".join(out)


def stale_answers(sock: socket.socket) -> tuple[str, int]:
    """("refused" or "written", replicas that confirmed it) from the SET's
    and the WAIT's replies."""
    data = b""
    try:
        while data.count(b"\r\n") < 2:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    lines = data.split(b"\r\n")
    outcome = "refused" if lines[0].startswith(b"-") else "written"
    # An error for the WAIT: the node is a replica already.
    return outcome, 0 if lines[1].startswith(b"-") else int(lines[1][1:])


def read_on(node, key: str):
    client = redis_sync.Redis(host="127.0.0.1", port=node.port, socket_timeout=5)
    try:
        client.execute_command("READONLY")
        return client.get(key)
    finally:
        client.close()


async def readiness(base: str) -> dict:
    """/readyz in full: the gateway's operations listener (OPS_PORT)."""
    async with aiohttp.ClientSession() as http:
        reply = await proof_client(http, base).get("/readyz", timeout=5)
    return {"status": reply.status, "body": reply.body}


def names_on(cluster: EmbeddedCluster, shard: int):
    """User names whose account key lives on `shard`."""
    while True:
        name = f"p{secrets.token_hex(5)}"
        if cluster.shard_of_key(keys.account(name)) == shard:
            yield name


async def probe_window(base: str, ledger: Ledger, cluster: EmbeddedCluster, shard: int,
                       start: float) -> float:
    """The window of one failover as a client sees it: from `start`, a new
    sign-up whose account lives on the shard every PROBE_EVERY_S, each its own
    request, until one is acknowledged; when that was, after `start`. The
    accounts are acknowledged writes like any other (the checker holds the
    database to them)."""
    names = names_on(cluster, shard)
    done = asyncio.Event()
    first: list[float] = []

    async def sign_up(api, name: str) -> None:
        ledger.attempted_users[name] = "rider"
        ledger.attempts += 1
        sent = time.monotonic()
        a = await api.call("POST", "/v1/riders", rider_body(name))
        if a.status == 201:
            now = time.monotonic()
            ledger.accounts[name] = a.body["id"]
            ledger.roles[name] = "rider"
            ledger.acked_writes += 1
            ledger.write_answers.append(
                WriteAnswer(sent, now, "POST", "/v1/riders", {"user_name": name}, a.body, None))
            first.append(now)
            done.set()
        else:
            ledger.failures += 1
            ledger.statuses[a.status] = ledger.statuses.get(a.status, 0) + 1

    async with aiohttp.ClientSession() as http:
        api = proof_client(http, base)
        calls = []
        deadline = time.monotonic() + 30
        while not done.is_set() and time.monotonic() < deadline:
            calls.append(asyncio.create_task(sign_up(api, next(names))))
            try:
                await asyncio.wait_for(done.wait(), PROBE_EVERY_S)
            except asyncio.TimeoutError:
                pass
        await asyncio.gather(*calls)
    assert first, f"no sign-up on shard {shard} was acknowledged within 30 s"
    return min(first) - start


async def acks_beyond(ledger: Ledger, n: int, timeout: float = 60) -> None:
    target = ledger.acked_writes + n
    await eventually(lambda: ledger.acked_writes >= target, timeout=timeout, interval=0.05,
                     message=f"the load did not reach {target} acknowledged writes")


async def fail_over(cluster: EmbeddedCluster, ledger: Ledger, feed: OpsFeed | None, ops: str,
                    shard: int, kind: str, base: str) -> dict:
    """One failover of `shard` under the running load: kill, lagging kill or
    freeze. Returns its figures once the shard is whole again."""
    victim = cluster.primary(shard)
    assert victim is not None, f"shard {shard} has no primary"
    if kind == "lagging":
        # The replicas frozen, then the primary's links to them closed: what
        # it writes from now on reaches no replica (a SIGSTOP alone would not
        # do: the stream waits in the frozen replica's socket buffer and is
        # read on SIGCONT). They cannot reconnect before the kill.
        replicas = cluster.replicas_of(shard)
        for r in replicas:
            r.freeze()
        await asyncio.to_thread(cut_replication, victim)
        await asyncio.sleep(LAG_S)  # the primary takes writes its replicas lack
    start = time.monotonic()
    if kind == "freeze":
        victim.freeze()
    else:
        victim.kill()
    probe = asyncio.create_task(probe_window(base, ledger, cluster, shard, start))
    # While the shard has no primary, the gateway's /readyz names it (the
    # cluster needs at least a node timeout to promote a replica).
    # Asked again while it has not named it yet (a loaded machine may answer
    # a check by a timeout of the whole check): within a node timeout, or, when
    # the frozen replicas cannot take over, until it is named.
    named = f"127.0.0.1:{victim.port}"
    deadline = time.monotonic() + (15.0 if kind == "lagging" else 1.0)
    while True:
        readyz = await readiness(ops)
        assert readyz["status"] == 503, readyz
        checks = readyz["body"].get("checks") or {}
        if named in str(checks.get("redis", "")) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert named in str(checks.get("redis", "")), readyz
    if kind == "lagging":
        for r in replicas:
            r.thaw()
    promoted = await asyncio.to_thread(cluster.wait_primary_other_than, shard, victim.port, 20)
    promoted_at = time.monotonic()
    stale = None
    if kind == "freeze":
        await asyncio.sleep(max(0.0, start + FREEZE_S - time.monotonic()))
        # A client that still takes the frozen node for the primary: its
        # write and WAIT wait in the node's socket (the kernel accepts the
        # connection) and run the moment it resumes, perhaps before it
        # hears it was replaced. Refused (MOVED), or written and confirmed
        # by no replica.
        key, sock = await asyncio.to_thread(queue_stale_write, cluster, victim, shard)
        victim.thaw()
        stale = (key, *await asyncio.to_thread(stale_answers, sock))
    else:
        await asyncio.to_thread(victim.start)  # on its own data, as a supervisor would
    window = await probe
    mine = on_shard(cluster, shard)
    # The load's own writes on the shard, for comparison (sparser on shards
    # that hold no region: sign-ups and logins only).
    load_first = ledger.first_write_after(start, lambda w: w.path != "/v1/riders" and mine(w))
    await asyncio.to_thread(cluster.wait_converged, 30)
    # The shard's primary now: when both replicas were thawed together, each
    # may have stood for election, and the later one can win after the first
    # was seen promoted.
    promoted = cluster.primary(shard)
    assert promoted is not None and promoted.port != victim.port, promoted
    node = next(t for t in cluster.topology() if t["port"] == victim.port)
    # The old primary is a replica of the new one now, with its data (the
    # writes it may have taken alone, late, are gone: lag 0 on the same offset).
    assert node["role"] == "replica" and node["follows"] == promoted.port, node
    if stale is not None:
        key, outcome, confirmed = stale
        assert outcome == "refused" or confirmed == 0, stale
        # Not kept either: neither the new primary nor the old node has it.
        assert await asyncio.to_thread(read_on, promoted, key) is None
        assert await asyncio.to_thread(read_on, victim, key) is None
    await acks_beyond(ledger, RECOVERY_ACKS)
    if feed is not None:
        await eventually(lambda: feed.since(promoted_at) > 0, timeout=20, interval=0.1,
                         message=f"the ops event stream got no event after the failover ({len(feed.arrivals)} before, {feed.errors[-3:]})")
    return {"kind": kind, "shard": shard, "victim": victim.port, "promoted": promoted.port,
            "stale_write": stale[1] if stale else None,
            "promoted_after_s": round(promoted_at - start, 3), "window_s": round(window, 3),
            "load_window_s": round(load_first - start, 3) if load_first else None}


async def run_rounds(cluster, ledger, plan: list[tuple[int, str]], seed: int,
                     base: str, feed: OpsFeed | None, ops: str) -> list[dict]:
    load = Load(base, ledger, random.Random(seed), riders=8, drivers=5)
    await load.start()
    rounds = []
    try:
        for shard, kind in plan:
            began = time.monotonic()
            await acks_beyond(ledger, WARMUP_ACKS)
            rounds.append(await fail_over(cluster, ledger, feed, ops, shard, kind, base))
            print(f"\n{rounds[-1]} ({time.monotonic() - began:.1f} s)")
    finally:
        await load.finish()
    return rounds


async def drained(redis) -> bool:
    return bool(await groups_drained(redis))


def windows(rounds: list[dict], kinds: tuple[str, ...]) -> list[float]:
    return [r["window_s"] for r in rounds if r["kind"] in kinds]


async def test_failovers_under_load_lose_no_acknowledged_write(replicated):
    cluster, base, systems = replicated
    system = start_services(cluster, base, systems, wait_replicas=1)
    ledger = Ledger()
    admin = create_redis(cluster.url)
    feed = OpsFeed(system.url)
    try:
        async with aiohttp.ClientSession() as http:
            await eventually(lambda: ready(system.url, http), timeout=30, interval=0.1,
                             message="the system did not become ready")
        ledger.preexisting = await existing(admin)
        await feed.start()
        others = [s for s in range(cluster.masters) if s != sf_shard(cluster)]
        home = sf_shard(cluster)
        plan = [(home, "kill"), (others[0], "kill"), (others[1], "kill"),
                (home, "lagging"), (others[0], "lagging"), (others[1], "lagging"),
                (home, "freeze"), (others[0], "freeze")]
        rounds = await run_rounds(cluster, ledger, plan, 1101, system.url, feed, system.ops_url)
        await eventually(lambda: drained(admin), timeout=30, interval=0.2,
                         message="the consumer groups did not drain")
        report = await check(admin, ledger)
    finally:
        await feed.stop()
        await admin.aclose()
    kills = windows(rounds, ("kill", "lagging"))
    freezes = windows(rounds, ("freeze",))
    every = kills + freezes
    figures = {
        "failovers": len(rounds),
        "kills": len(kills),
        "freezes": len(freezes),
        "shards_failed_over": len({r["shard"] for r in rounds}),
        "acknowledged_writes_checked": report.checked,
        "acknowledged_writes_total": ledger.acked_writes,
        "lost": len(report.lost),
        "inconsistent": len(report.inconsistent),
        "unattempted": len(report.unattempted),
        "answers_without_2xx": {str(k): v for k, v in sorted(ledger.statuses.items())},
        "window_kill_p50_s": round(statistics.median(kills), 3),
        "window_kill_max_s": max(kills),
        "window_freeze_p50_s": round(statistics.median(freezes), 3),
        "window_freeze_max_s": max(freezes),
        "window_p50_s": round(statistics.median(every), 3),
        "window_max_s": max(every),
        "promotion_p50_s": round(statistics.median(r["promoted_after_s"] for r in rounds), 3),
        "rounds": rounds,
    }
    record_figures("failover", figures)
    print(f"\nfailover: {report.summary()}")
    print({k: v for k, v in figures.items() if k != "rounds"})
    assert report.clean, report.details()
    bad = {s for s in ledger.statuses if s not in ALLOWED and not 400 <= s < 500}
    assert not bad, f"answers other than 2xx/4xx/503/504: {ledger.statuses}"
    assert figures["shards_failed_over"] == cluster.masters
    assert figures["window_p50_s"] < WINDOW_P50_S, figures
    assert figures["window_max_s"] < WINDOW_MAX_S, figures


async def test_control_without_wait_replicas_loses_acknowledged_writes(replicated):
    """The same lagging kill with WAIT_REPLICAS=0: writes the primary
    acknowledged while its replicas were held back die with it, and the
    checker must find them. Runs after the proof on the same cluster, with
    fresh services and a fresh ledger."""
    cluster, base, systems = replicated
    for s in systems:
        s.stop()
    systems.clear()
    t0 = time.monotonic()
    system = start_services(cluster, base, systems, wait_replicas=0)
    print(f"\ncontrol: services up in {time.monotonic() - t0:.1f} s")
    ledger = Ledger()
    admin = create_redis(cluster.url)
    try:
        async with aiohttp.ClientSession() as http:
            await eventually(lambda: ready(system.url, http), timeout=30, interval=0.1,
                             message="the system did not become ready")
        ledger.preexisting = await existing(admin)
        home = sf_shard(cluster)
        rounds = await run_rounds(cluster, ledger, [(home, "lagging"), (home, "lagging")],
                                  2202, system.url, None, system.ops_url)
        t0 = time.monotonic()
        report = await check(admin, ledger)
        print(f"control: checked in {time.monotonic() - t0:.1f} s")
    finally:
        await admin.aclose()
    record_figures("failover", {"control_lost": len(report.lost),
                                "control_acknowledged_writes_checked": report.checked,
                                "control_failovers": len(rounds)})
    print(f"\ncontrol: {report.summary()}")
    assert report.lost, "the checker found no loss without WAIT_REPLICAS"
