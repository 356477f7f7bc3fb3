"""Lua scripts: loaded from a package's `lua/` folder, the shared prelude and
any libraries prepended, sent with EVALSHA and loaded on demand (NOSCRIPT) on
whichever node serves the keys, so they work on a restarted server and on
every shard.

Under `WAIT_REPLICAS` > 0 a write goes out with WAIT and WAITAOF right behind
it on its own connection (`run_and_wait`, `write_and_wait`: why there).

Libraries go between the prelude and the script: `TRIP_LIBRARY` holds the
helpers of every script that changes a trip (status counters, the ranking and
its indexes), in trip_service and driver_service alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import suppress
from pathlib import Path

import orjson
from redis.asyncio.cluster import PipelineCommand, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import AskError, MovedError, NoScriptError, ResponseError, TryAgainError

from . import errors, metrics
from .events import script_header

LUA_DIR = Path(__file__).parent / "lua"
PRELUDE = (LUA_DIR / "prelude.lua").read_text()
TRIP_LIBRARY = LUA_DIR / "trips.lua"
# How long a write waits for its replicas (WAIT and WAITAOF together) before
# it is answered 503.
WAIT_TIMEOUT_MS = 1000


def read_script(path: Path, libraries: Iterable[Path] = ()) -> str:
    return "\n".join([PRELUDE, *(lib.read_text() for lib in libraries), path.read_text()])


class Scripts:
    """The scripts of one service: `await scripts.run(name, keys, args, n_events)`."""

    def __init__(
        self, redis, directory: Path, producer: str, libraries: Iterable[Path] = ()
    ) -> None:
        self.producer = producer
        self.redis = redis
        libraries = tuple(libraries)
        self._scripts: dict[str, AsyncScript] = {
            path.stem: redis.register_script(read_script(path, libraries))
            for path in sorted(directory.glob("*.lua"))
        }

    def names(self) -> list[str]:
        return sorted(self._scripts)

    async def run(self, name: str, keys: list[str], args: list, *, n_events: int = 4):
        header = script_header(self.producer, n_events)
        return await self._scripts[name](keys=keys, args=[*header, *args])

    async def run_and_wait(
        self, name: str, keys: list[str], args: list, replicas: int, *,
        n_events: int = 4, timeout_ms: int = WAIT_TIMEOUT_MS,
    ) -> tuple[object, object]:
        """Run a script, then wait until `replicas` replicas have its writes
        in their AOF, for at most `timeout_ms`, on the script's own connection
        (`write_and_wait`): `(script reply, WAITAOF reply or its error)`.
        Check the second with `require_replicas` when the script wrote (a
        refusal writes nothing). A script missing from the server (NOSCRIPT:
        a new or restarted server) is loaded and all sent again: nothing ran.
        """
        argv = [*script_header(self.producer, n_events), *args]
        return await script_and_wait(self.redis, self._scripts[name], keys, argv, replicas,
                                     timeout_ms)


# --- WAIT_REPLICAS ----------------------------------------------------------
async def script_and_wait(
    redis, script, keys: list[str], args: list, replicas: int, timeout_ms: int = WAIT_TIMEOUT_MS
) -> tuple[object, object]:
    """`write_and_wait` of a registered script (redis-py's Script object):
    `(script reply, WAITAOF reply or its error)`. A script missing from the
    server (NOSCRIPT: a new or restarted server) is loaded and all sent
    again: nothing ran."""
    for _ in range(3):
        reply, waited = await write_and_wait(
            redis, keys[0], ("EVALSHA", script.sha, len(keys), *keys, *args),
            replicas, timeout_ms,
        )
        if isinstance(reply, NoScriptError):
            script.sha = await redis.script_load(script.script)
            continue
        if isinstance(reply, Exception):
            raise reply
        return reply, waited
    raise errors.Unavailable("The script could not be loaded on the server.",
                             headers={"Retry-After": "1"})


async def write_and_wait(
    redis, key: str, command: tuple, replicas: int, timeout_ms: int = WAIT_TIMEOUT_MS
) -> tuple[object, object]:
    """Send a write command on `key` (a script, a SET), then WAIT and WAITAOF
    on the same connection right behind it: `(its reply, WAITAOF reply)`,
    each an exception if it failed. Never raises a command's error.

    WAITAOF (like WAIT) waits for the writes of the connection it is sent on;
    sent on another pooled connection it confirms nothing about this write.
    So the three go in one pipeline, which redis-py sends on one connection,
    in order; on a cluster, to the primary of `key` on one of its connections.

    The WAIT's answer is unused: WAITAOF alone right behind the write asks
    the replica for its offsets when the replica has applied the write but
    not yet fsynced it, and the replica's next report comes a second later
    (its replication cron), so each write took a second. Behind a WAIT,
    WAITAOF asks once the replica has answered the WAIT, by then after its
    fsync: a millisecond or two on one host. The two share `timeout_ms`.
    """
    nudge_ms = timeout_ms // 2
    commands = (
        command,
        ("WAIT", replicas, nudge_ms),
        ("WAITAOF", 0, replicas, timeout_ms - nudge_ms),
    )
    if isinstance(redis, RedisCluster):
        reply, _, waited = await _send_on_cluster(redis, key, commands)
    else:
        async with redis.pipeline(transaction=False) as pipe:
            for c in commands:
                pipe.execute_command(*c)
            reply, _, waited = await pipe.execute(raise_on_error=False)
    return reply, waited


async def _send_on_cluster(redis: RedisCluster, key: str, commands: tuple) -> list:
    """The cluster client's own pipeline routes a keyless command by its own
    policy and, on a redirect or a retry, resends commands one by one: it does
    not keep them on one connection. So they go to the primary of `key`
    itself, which sends a batch on one of its connections, with no redirects
    or retries of its own. MOVED (the slot has a new primary): nothing ran; a
    keyed read through the client updates its slot map and the batch goes
    again. ASK or TRYAGAIN (the slot is being migrated): nothing ran; 503.
    A connection error is raised as it is (503): the write may have run."""
    for _ in range(3):
        await redis.initialize()  # a no-op once the slot map is known
        node = redis.get_node_from_key(key)
        batch = [PipelineCommand(i, *command) for i, command in enumerate(commands)]
        await node.execute_pipeline(batch)
        first = batch[0].result
        if isinstance(first, MovedError):
            # A keyed read (one every service's ACL user may send) through the
            # client, which follows MOVED and remaps the slot; its answer unused.
            with suppress(ResponseError):
                await redis.execute_command("JSON.GET", key, "$.id")
            continue
        if isinstance(first, (AskError, TryAgainError)):
            raise errors.Unavailable(
                "the data of this request is moving between shards; try again",
                headers={"Retry-After": "1"},
            )
        return [command.result for command in batch]
    raise errors.Unavailable("the cluster kept moving this request's slot",
                             headers={"Retry-After": "1"})


def require_replicas(waited, replicas: int) -> None:
    """503 unless a WAITAOF reply counts `replicas` replicas that have the
    connection's writes in their AOF (fsynced)."""
    if isinstance(waited, Exception):
        raise errors.Unavailable(f"cannot confirm the write on replicas: {waited}") from None
    acked = int(waited[1])
    if acked < replicas:
        raise errors.Unavailable(
            f"the write reached {acked} of {replicas} replicas in time",
            headers={"Retry-After": "1"},
        )


async def confirm_replay(redis, key: str, doc_id: str, replicas: int) -> None:
    """An idempotent create answered `exists` wrote nothing now, and its first
    attempt may have been answered 503 (written, not confirmed). A write that
    changes nothing, the document's immutable `id` set to itself (`XX`: only
    if there), puts this connection's offset past that first write; then the
    usual wait. 503 unless the replicas have it."""
    touched, waited = await write_and_wait(
        redis, key, ("JSON.SET", key, "$.id", orjson.dumps(doc_id).decode(), "XX"), replicas
    )
    if touched is None or isinstance(touched, Exception):
        # Nothing written (no `$.id`, or an error): the wait would say nothing.
        raise errors.Unavailable(f"cannot confirm the write on replicas: {touched}")
    require_replicas(waited, replicas)


class ScriptError(Exception):
    """A script refused with a code other than not_found/conflict."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def sentence(text: str) -> str:
    """A script's refusal as the API words every detail: a capital and a stop."""
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text[-1] in ".!?" else ".")


def unpack(reply) -> tuple[str, dict | None]:
    """Scripts answer `{'ok', doc_json, 'type,type'}`, `{'exists', doc_json, ''}`
    or `{'err', code, detail}`. Count the published events; map refusals."""
    kind = reply[0]
    if kind == "err":
        code, detail = reply[1], reply[2]
        if code == "not_found":
            raise errors.NotFound(sentence(detail))
        if code == "conflict":
            raise errors.Conflict(sentence(detail))
        raise ScriptError(code, detail)
    doc = orjson.loads(reply[1]) if len(reply) > 1 and reply[1] else None
    if len(reply) > 2 and reply[2]:
        for type_ in reply[2].split(","):
            metrics.EVENTS_PUBLISHED.labels(type_).inc()
    return kind, doc
