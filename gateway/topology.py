"""The Redis topology as operations see it: shards, their nodes, replication
lag, and every failover, watched by the gateway (GET /v1/ops/topology).

On Redis Cluster a task asks every node `CLUSTER SHARDS` every
`TOPOLOGY_POLL_S` (one command per node per poll, over its own small
connection with a short timeout, at most `MAX_NODES` nodes), so the cost is
bounded and a hung node costs a poll the timeout, never a request. Each node
reports its own role and replication offset; the cluster's health of a node
is what most of the nodes that answered say. A shard's primary is the master
that answers and that most views name online; when it changes, a failover is
recorded with how long the shard had no answering primary (polling five times
as often while a shard has none). The history lives in this process (the
newest `HISTORY` failovers).

On one server there is nothing to watch: the route says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from aiohttp import web
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import RedisError

from common import keys
from common.redisconn import is_cluster_url
from common.timeutil import iso, now_ms

logger = logging.getLogger(__name__)

MAX_NODES = 64
HISTORY = 50


def region_slot(region: str) -> int:
    """The hash slot of every key of a region (their hash tag)."""
    return key_slot(keys.events(region).encode())


@dataclass(slots=True)
class NodeSeen:
    """One node in one poll."""

    id: str
    address: str
    shard: str
    slots: tuple[int, ...]
    reachable: bool = False
    role: str | None = None  # from the node's own answer when it answered
    offset: int | None = None
    health_votes: Counter = field(default_factory=Counter)
    role_votes: Counter = field(default_factory=Counter)
    master_votes: int = 0  # views naming it an online master of its shard
    primary_online_in_own_view: bool = False


@dataclass(slots=True)
class ShardState:
    primary: str | None = None  # node id
    primary_address: str | None = None
    last_ok_ms: int | None = None  # last poll that found a primary answering
    lost_ms: int | None = None  # first poll without one


class TopologyWatcher:
    def __init__(
        self,
        redis_url: str,
        regions: Iterable[str],
        poll_s: float = 0.5,
        timeout_s: float = 0.4,
    ) -> None:
        self.cluster = is_cluster_url(redis_url)
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.regions = {name: region_slot(name) for name in regions}
        parts = urlsplit(redis_url.replace("+cluster", "", 1))
        self._tls = parts.scheme == "rediss"
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._seed = f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}"
        self._clients: dict[str, aioredis.Redis] = {}
        self._shards: dict[str, ShardState] = {}
        self._failovers: deque[dict] = deque(maxlen=HISTORY)
        self._snapshot: dict | None = None
        self._problem: str | None = None
        self._task: asyncio.Task | None = None

    # ------------------------------------------------------------ polling
    def _client(self, address: str) -> aioredis.Redis:
        client = self._clients.get(address)
        if client is None:
            host, _, port = address.rpartition(":")
            client = aioredis.Redis(
                host=host, port=int(port), username=self._user, password=self._password,
                ssl=self._tls, socket_timeout=self.timeout_s,
                socket_connect_timeout=self.timeout_s, decode_responses=True, protocol=2,
                retry=Retry(NoBackoff(), 0), max_connections=2,
            )
            self._clients[address] = client
        return client

    async def _ask(self, address: str):
        try:
            reply = await asyncio.wait_for(
                self._client(address).execute_command("CLUSTER", "SHARDS"), self.timeout_s * 2
            )
            return [_as_dict(shard) for shard in reply]
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            return exc

    async def poll(self) -> dict:
        targets = sorted({self._seed, *(self._addresses())})[:MAX_NODES]
        answers = dict(zip(targets, await asyncio.gather(*(self._ask(a) for a in targets))))
        views = {a: v for a, v in answers.items() if isinstance(v, list)}
        seen = self._merge(views)
        # Nodes first heard of in this poll (at start, or a node added) are
        # asked at once, so that no snapshot shows them unanswered.
        new = sorted({n.address for n in seen.values()} - set(answers))[
            : max(0, MAX_NODES - len(answers))]
        if new:
            answers.update(zip(new, await asyncio.gather(*(self._ask(a) for a in new))))
            views = {a: v for a, v in answers.items() if isinstance(v, list)}
            seen = self._merge(views)
        now = now_ms()
        self._snapshot = self._build(seen, now)
        self._snapshot["problem"] = None
        if not views:
            errors = {f"{type(e).__name__}: {e}" for e in answers.values()}
            self._snapshot["problem"] = "no node answered CLUSTER SHARDS: " + "; ".join(
                sorted(errors))[:500]
            if self._problem != self._snapshot["problem"]:
                logger.warning("topology: %s", self._snapshot["problem"])
        self._problem = self._snapshot["problem"]
        # Forget the nodes no answering node knows any more (a node removed).
        known = {n.address for n in seen.values()} | {self._seed}
        for address in list(self._clients):
            if address not in known and views:
                await self._clients.pop(address).aclose()
        return self._snapshot

    def _addresses(self) -> list[str]:
        return list(self._clients)

    def _merge(self, views: dict[str, list]) -> dict[str, NodeSeen]:
        seen: dict[str, NodeSeen] = {}
        for address, view in views.items():
            for shard in view:
                slots = tuple(int(s) for s in shard.get("slots") or ())
                shard_id = shard.get("id") or ",".join(map(str, slots))
                for raw in shard.get("nodes") or ():
                    node_address = _address(raw)
                    node = seen.get(raw["id"])
                    if node is None:
                        node = seen[raw["id"]] = NodeSeen(raw["id"], node_address, shard_id, slots)
                    if slots and not node.slots:
                        node.slots, node.shard = slots, shard_id
                    health = raw.get("health")
                    node.health_votes[health] += 1
                    node.role_votes[raw.get("role")] += 1
                    online_master = raw.get("role") == "master" and health == "online"
                    if online_master:
                        node.master_votes += 1
                    if node_address == address:
                        node.reachable = True
                        node.role = raw.get("role")
                        node.offset = raw.get("replication-offset")
            # A replica's own view: is the master it follows online?
            for shard in view:
                members = shard.get("nodes") or ()
                me = [n for n in members if _address(n) == address]
                if me:
                    seen[me[0]["id"]].primary_online_in_own_view = any(
                        n.get("role") == "master" and n.get("health") == "online"
                        and n["id"] != me[0]["id"] for n in members
                    )
        for address in views:
            self._client(address)
        for node in seen.values():
            if len(self._clients) < MAX_NODES:
                self._client(node.address)
        return seen

    def _build(self, seen: dict[str, NodeSeen], now: int) -> dict:
        by_shard: dict[str, list[NodeSeen]] = {}
        for node in seen.values():
            by_shard.setdefault(node.shard, []).append(node)
        shards = []
        for shard_id, nodes in by_shard.items():
            slots = next((n.slots for n in nodes if n.slots), ())
            masters = [n for n in nodes if n.reachable and n.role == "master" and n.master_votes]
            primary = max(masters, key=lambda n: n.master_votes, default=None)
            if primary is not None and not slots:
                slots = primary.slots
            self._track(shard_id, slots, primary, now)
            state = self._shards[shard_id]
            out_nodes = []
            for node in sorted(nodes, key=lambda n: (n is not primary, n.address)):
                health = node.health_votes.most_common(1)[0][0] if node.health_votes else None
                is_primary = node is primary
                said = node.role if node.reachable else node.role_votes.most_common(1)[0][0]
                # A master that is not the shard's primary: one that failed (and
                # others still list) or a paused one that has not yet learnt.
                role = "primary" if is_primary else (
                    "stale primary" if said == "master" else "replica"
                )
                lag = None
                if not is_primary and primary is not None and node.reachable and (
                    node.offset is not None and primary.offset is not None
                ):
                    lag = max(0, primary.offset - node.offset)
                out_nodes.append({
                    "id": node.id,
                    "address": node.address,
                    "role": role,
                    "follows": None if is_primary or primary is None else primary.address,
                    "replication_offset": node.offset,
                    "lag_bytes": lag,
                    "health": health,
                    "reachable": node.reachable,
                    "link": None if is_primary else (
                        "up" if node.reachable and node.primary_online_in_own_view else "down"
                    ),
                })
            shards.append({
                "id": shard_id,
                "slots": [list(slots[i:i + 2]) for i in range(0, len(slots), 2)],
                "regions": sorted(r for r, slot in self.regions.items() if _holds(slots, slot)),
                "primary": primary.address if primary else None,
                "no_primary_for_s": None if primary or state.lost_ms is None
                else round((now - (state.last_ok_ms or state.lost_ms)) / 1000, 1),
                "nodes": out_nodes,
            })
        shards.sort(key=lambda s: s["slots"][0][0] if s["slots"] else 16384)
        return {"mode": "cluster", "polled_at": iso(now), "poll_interval_s": self.poll_s,
                "shards": shards}

    def _track(self, shard_id: str, slots, primary: NodeSeen | None, now: int) -> None:
        state = self._shards.setdefault(shard_id, ShardState())
        if primary is None:
            if state.lost_ms is None:
                state.lost_ms = now
            return
        if state.primary is not None and primary.id != state.primary:
            gap_from = state.last_ok_ms or now
            entry = {
                "at": iso(now),
                "shard": shard_id,
                "regions": sorted(r for r, slot in self.regions.items() if _holds(slots, slot)),
                "failed": state.primary_address,
                "promoted": primary.address,
                "no_primary_s": round((now - gap_from) / 1000, 1),
            }
            self._failovers.appendleft(entry)
            logger.warning(
                "failover of shard %s (%s): %s -> %s, no primary for about %.1f s",
                shard_id, ",".join(entry["regions"]) or "no region", entry["failed"],
                entry["promoted"], entry["no_primary_s"],
            )
        state.primary, state.primary_address = primary.id, primary.address
        state.last_ok_ms, state.lost_ms = now, None

    # ------------------------------------------------------------ reading
    def snapshot(self) -> dict:
        if not self.cluster:
            return {"mode": "one server", "polled_at": None, "poll_interval_s": None,
                    "shards": [], "failovers": [], "problem": None}
        base = self._snapshot or {"mode": "cluster", "polled_at": None,
                                  "poll_interval_s": self.poll_s, "shards": [],
                                  "problem": "not polled yet"}
        return {**base, "failovers": list(self._failovers)}

    # ------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.poll()
            except Exception:  # the watcher must outlive any odd answer
                logger.exception("topology poll failed")
            # While a shard has no primary, poll five times as often: the end
            # of the gap (and the failover) is seen within a fifth of the interval.
            every = self.poll_s / 5 if self._gap() else self.poll_s
            await asyncio.sleep(max(0.0, every - (time.monotonic() - started)))

    def _gap(self) -> bool:
        return any(state.lost_ms is not None for state in self._shards.values())

    async def close(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def _address(node: dict) -> str:
    """host:port of a node in CLUSTER SHARDS (`endpoint` is "?" when unknown)."""
    endpoint = node.get("endpoint")
    host = endpoint if endpoint and endpoint != "?" else node.get("ip")
    return f"{host}:{node.get('port')}"


def _as_dict(value):
    """A RESP2 map (a flat list of names and values) as a dict, all the way down
    to the nodes; redis-py may or may not have done it already."""
    if isinstance(value, list) and len(value) % 2 == 0 and all(
        isinstance(k, str) for k in value[::2]
    ):
        value = dict(zip(value[::2], value[1::2]))
    if isinstance(value, dict) and isinstance(value.get("nodes"), list):
        value["nodes"] = [_as_dict(n) for n in value["nodes"]]
    return value


def _holds(slots: tuple[int, ...], slot: int) -> bool:
    return any(slots[i] <= slot <= slots[i + 1] for i in range(0, len(slots) - 1, 2))


TOPOLOGY = web.AppKey("topology", TopologyWatcher)


def topology_ctx(watcher: TopologyWatcher):
    """cleanup_ctx entry: the polling task on a cluster, owned and cancelled."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[TOPOLOGY] = watcher
        task = asyncio.create_task(watcher.run(), name="topology-watcher") if watcher.cluster else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
            await watcher.close()

    return ctx
