"""The Redis client factory, the JSON module check and the cleanup context.

One pool per process. redis-py's asyncio pool raises when full; the blocking
pool makes a caller wait for a connection instead, which is what we want
under load. Replies are decoded to str and use RESP2, whose shapes the code
relies on (redis-py 8 would otherwise speak RESP3).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from hiredis import pack_command as hiredis_pack
from redis import asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.cluster import get_node_name
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .settings import Settings

logger = logging.getLogger(__name__)

REDIS = web.AppKey("redis", aioredis.Redis)


class HiredisPackedConnection(aioredis.Connection):
    """A connection whose commands are packed by hiredis (C) instead of
    redis-py's per-argument Python loop: the same bytes, about 8 us less per
    command. Arguments hiredis does not take (bool, None, bytearray) go
    through redis-py's packer, which also raises its usual errors."""

    def pack_command(self, *args):
        first = args[0]
        # Like redis-py: a command name with literal arguments ("CONFIG GET").
        if isinstance(first, str):
            if " " in first:
                args = (*first.encode().split(), *args[1:])
        elif isinstance(first, bytes) and b" " in first:
            args = (*first.split(), *args[1:])
        try:
            return [hiredis_pack(args)]
        except TypeError:
            return super().pack_command(*args)

# A socket timeout well above any BLOCK we issue (<= 2 s) on the shared pool.
SOCKET_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 2.0


class JsonModuleMissing(RuntimeError):
    """The server has no JSON commands: the system cannot run on it."""


JSON_MISSING_MESSAGE = (
    "The Redis server at {url} has no JSON commands (JSON.SET, JSON.GET). "
    "This system keeps its shared state in RedisJSON documents. Run one of: "
    "Redis 8 or later (JSON built in), Redis Stack, Valkey with the JSON module "
    "(valkey-server --loadmodule rejson.so), or Amazon MemoryDB; or unset "
    "REDIS_URL and let `make run` start the embedded server."
)


def is_cluster_url(url: str) -> bool:
    scheme = urlsplit(url).scheme
    return scheme in ("redis+cluster", "rediss+cluster")


def create_redis(
    url: str,
    *,
    max_connections: int = 64,
    socket_timeout: float | None = SOCKET_TIMEOUT_S,
    retries: int = 2,
) -> aioredis.Redis:
    """A pooled asyncio client for a standalone server or a cluster.

    `redis+cluster://host:port` selects Redis Cluster (the URL names any one
    node; the client discovers the rest).
    """
    retry = Retry(ExponentialBackoff(cap=0.2, base=0.02), retries)
    errors = [RedisConnectionError, RedisTimeoutError, ConnectionResetError]
    if is_cluster_url(url):
        real_url = url.replace("+cluster", "", 1)
        return FollowingCluster.from_url(
            real_url,
            decode_responses=True,
            protocol=2,
            max_connections=max_connections,
            socket_timeout=socket_timeout,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            retry=retry,
            retry_on_error=errors,
        )
    plain = urlsplit(url).scheme == "redis"
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        **({"connection_class": HiredisPackedConnection} if plain else {}),
        max_connections=max_connections,
        timeout=socket_timeout,
        decode_responses=True,
        protocol=2,
        socket_timeout=socket_timeout,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_keepalive=True,
        retry=retry,
        retry_on_error=errors,
    )
    return aioredis.Redis(connection_pool=pool)


# --- following failovers ------------------------------------------------------
# How often a cluster client asks the cluster who serves each slot, and how
# long it waits for the answer of one node before asking another.
WATCH_INTERVAL_S = 0.1
PROBE_TIMEOUT_S = 0.5
# Connection settings a probe shares with the client's own connections.
_PROBE_KWARGS = ("username", "password", "credential_provider", "connection_class",
                 "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs",
                 "ssl_ca_data", "ssl_check_hostname", "ssl_min_version", "ssl_ciphers")


class FollowingCluster(RedisCluster):
    """redis-py's cluster client that follows a failover by itself.

    On its own, the client learns of a new primary only from an error of the
    old one. A killed primary refuses connections at once, but a hung one
    (SIGSTOP, a stalled VM, a long fsync) accepts the commands and answers
    nothing: every caller waits for its socket timeout, and a refresh made
    before the cluster has promoted a replica finds the hung node still in
    charge. So each client watches: every WATCH_INTERVAL_S it reads CLUSTER
    SLOTS from one node (over its own short-timeout connections, moving on
    to another node when one does not answer). When a slot range has a new
    primary, confirmed by a second node (a primary that resumes after a
    freeze still claims its slots for a moment), the client refreshes its
    slot map and closes its connections to the old primary: the commands
    waiting on it fail with a connection error, which the client retries on
    the new primary, and blocked stream reads start again there.
    """

    _watch_task: asyncio.Task | None = None
    _probes: dict | None = None
    _probe_order: list | None = None

    async def initialize(self, *args, **kwargs):
        result = await super().initialize(*args, **kwargs)
        if self._watch_task is None and self._topology_ready:
            self._probes = {}
            self._probe_order = []
            self._watch_task = asyncio.get_running_loop().create_task(
                self._watch(), name="redis-cluster-watch")
        return result

    async def aclose(self) -> None:
        task, self._watch_task = self._watch_task, None
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await task
        for probe in (self._probes or {}).values():
            with suppress(Exception):
                await probe.aclose()
        self._probes = {}
        await super().aclose()

    # -- probing ---------------------------------------------------------------
    def _probe(self, name: str) -> aioredis.Redis:
        probe = self._probes.get(name)
        if probe is None:
            host, _, port = name.rpartition(":")
            kwargs = self.nodes_manager.connection_kwargs
            pool = aioredis.ConnectionPool(
                host=host, port=int(port), max_connections=2, decode_responses=True,
                protocol=2, socket_timeout=PROBE_TIMEOUT_S,
                socket_connect_timeout=PROBE_TIMEOUT_S,
                **{k: kwargs[k] for k in _PROBE_KWARGS if kwargs.get(k) is not None},
            )
            probe = self._probes[name] = aioredis.Redis(connection_pool=pool)
        return probe

    async def _ask(self, name: str, command: tuple) -> Any:
        try:
            return await asyncio.wait_for(
                self._probe(name).execute_command(*command), PROBE_TIMEOUT_S)
        except (asyncio.TimeoutError, RedisTimeoutError) as exc:
            # The connection may hold a half-read answer: start afresh.
            probe = self._probes.pop(name, None)
            if probe is not None:
                with suppress(Exception):
                    await probe.aclose()
            raise RedisTimeoutError(f"{name} did not answer in {PROBE_TIMEOUT_S} s") from exc

    def _known_nodes(self) -> list[str]:
        names = [n.name for n in self.get_nodes()]
        order = [n for n in self._probe_order if n in names]
        return order + [n for n in names if n not in order]

    async def _slot_owners(self, exclude: frozenset = frozenset()) -> tuple[str, dict] | None:
        """(node asked, {(first, last): primary name}) from the first node
        that answers, or None."""
        for name in self._known_nodes():
            if name in exclude:
                continue
            try:
                reply = await self._ask(name, ("CLUSTER", "SLOTS"))
            except (RedisConnectionError, RedisTimeoutError, OSError, ResponseError):
                # Ask the others first next time.
                self._probe_order = [n for n in self._known_nodes() if n != name] + [name]
                continue
            host = name.rpartition(":")[0]
            owners = {}
            for first, last, primary, *_ in reply:
                owners[(int(first), int(last))] = get_node_name(primary[0] or host,
                                                               int(primary[1]))
            return name, owners
        return None

    def _moved(self, owners: dict) -> dict[tuple[int, int], tuple[str, str]]:
        """Slot ranges whose primary differs from the client's: range -> (old, new)."""
        cache = self.nodes_manager.slots_cache
        moved = {}
        for (first, last), owner in owners.items():
            nodes = cache.get(first)
            current = nodes[0].name if nodes else None
            if current != owner:
                moved[(first, last)] = (current, owner)
        return moved

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            try:
                await self._check_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # the watch must outlive any one failure
                logger.warning("cluster watch failed", exc_info=True)

    async def _check_once(self) -> bool:
        """Follow a failover if one happened; True if the client switched."""
        if not self._topology_ready:
            return False
        first = await self._slot_owners()
        if first is None:
            return False
        asked, owners = first
        moved = self._moved(owners)
        if not moved:
            return False
        new_owners = {new for _, new in moved.values()}
        second = await self._slot_owners(frozenset({asked, *new_owners}))
        if second is None:
            return False
        moved = {r: (old, new) for r, (old, new) in moved.items() if second[1].get(r) == new}
        if not moved:
            return False
        await self._follow(moved)
        return True

    async def _follow(self, moved: dict[tuple[int, int], tuple[str, str]]) -> None:
        old_nodes = [self.nodes_manager.nodes_cache.get(old) for old, _ in moved.values()]
        logger.warning("cluster: slots %s have a new primary; following",
                       ", ".join(f"{a}-{b} {old} -> {new}" for (a, b), (old, new) in moved.items()))
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            # The old primary is asked last: hung, it would hold the refresh
            # for a whole socket timeout.
            await self._refresh_topology(
                additional_startup_nodes_info=[
                    (new.rpartition(":")[0], int(new.rpartition(":")[2]))
                    for _, new in moved.values()
                ],
                last_failed_node_name=next((old for old, _ in moved.values() if old), None))
            self._initialize = False
        # Commands waiting on the old primary fail now and are retried on the
        # new one, instead of waiting for its socket timeout.
        for node in old_nodes:
            if node is not None:
                with suppress(Exception):
                    await node.disconnect()

    # -- readiness -------------------------------------------------------------
    async def shard_states(self) -> dict[str, str]:
        """Each slot range's primary: "ok", or why it is down."""
        await self.initialize()
        ranges: dict[str, list[int]] = {}
        cache = self.nodes_manager.slots_cache
        start = None
        owner = None
        for slot in range(16385):
            nodes = cache.get(slot) if slot < 16384 else None
            name = nodes[0].name if nodes else None
            if name != owner or slot == 16384:
                if owner is not None and start is not None:
                    ranges.setdefault(owner, []).append((start, slot - 1))
                start, owner = slot, name
        names = list(ranges)
        results = await asyncio.gather(*(self._ask(n, ("PING",)) for n in names),
                                       return_exceptions=True)
        states = {}
        for name, result in zip(names, results):
            label = "shard " + ",".join(f"{a}-{b}" for a, b in ranges[name]) + f" ({name})"
            states[label] = "ok" if not isinstance(result, BaseException) else \
                f"down: {type(result).__name__}"
        return states


async def check_redis_ready(redis) -> None:
    """The readiness check of a process's Redis: a standalone server
    answers PING; on a cluster, the primary of every slot range does (the
    error names the shards that do not)."""
    if isinstance(redis, FollowingCluster):
        states = await redis.shard_states()
        down = [f"{label}: {state}" for label, state in states.items() if state != "ok"]
        if down:
            raise ShardsDown("; ".join(down))
        return
    await redis.ping()


class ShardsDown(RuntimeError):
    """Some shard of the cluster has no primary that answers."""


async def check_json(redis: aioredis.Redis, url: str = "") -> None:
    """Raise JsonModuleMissing, with what to run instead, if JSON is absent."""
    try:
        await redis.execute_command("JSON.GET", "rh:{probe}:json-check")
    except ResponseError as exc:
        text = str(exc).lower()
        if "unknown command" in text or "unknown" in text and "json" in text:
            raise JsonModuleMissing(JSON_MISSING_MESSAGE.format(url=redact(url))) from exc
        raise


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def redis_ctx(
    settings: Settings,
    *,
    check: bool = True,
    socket_timeout: float | None = SOCKET_TIMEOUT_S,
    retries: int = 2,
):
    """cleanup_ctx entry: open the pool, check JSON, close with aclose()."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        redis = create_redis(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            socket_timeout=socket_timeout,
            retries=retries,
        )
        try:
            if check:
                await check_json(redis, settings.redis_url)
        except BaseException:
            await redis.aclose()
            raise
        app[REDIS] = redis
        yield
        await redis.aclose()

    return ctx
