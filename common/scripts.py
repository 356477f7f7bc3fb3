"""Lua, run as Redis Functions: the admin loads them, the services call them.

Each service's scripts are one Functions library (`ridehail_<service>`): every
Lua file of the service's `lua/` folder is one function, named
`<prefix>_<file stem>`, declared in the service's `scripts.py` (named keys,
arguments and reply: common/script_contracts.py), with the binding of its
names in front of its body. The shared prelude and any libraries are the top
of the library: their local functions are built once, at load, not on each
call (about 7 us of Redis CPU per call). The admin loads every library with
`python -m common.scripts load`
(FUNCTION LOAD REPLACE on every primary; the launcher, the tests' harness,
compose's init service and the Kubernetes Job run it); the services only
call them (FCALL). Their ACL users have neither SCRIPT LOAD nor EVAL nor
FUNCTION: a stolen service password cannot run Lua of its own. Functions are
persisted in the AOF and RDB and replicated, so they survive a restart of
Redis and a failover, where a script cache would be empty (NOSCRIPT, with
nobody allowed to load). Each library has a `<prefix>__version` function:
a service is not ready while the server has another version of its library
(stale or missing: load them again).

Under `WAIT_REPLICAS` > 0 a write goes out with WAIT and WAITAOF right behind
it on its own connection (`Scripts.call`, `write_and_wait`: why there).

Libraries go between the prelude and the script: `TRIP_LIBRARY` holds the
helpers of every script that changes a trip (status counters, the ranking and
its indexes), in trip_service and driver_service alike.

    python -m common.scripts load      # REDIS_URL: an admin's URL (on a cluster, any node)
    python -m common.scripts show      # the libraries' code, as loaded
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Iterable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import orjson
from redis.asyncio.cluster import PipelineCommand, RedisCluster
from redis.exceptions import AskError, MovedError, ResponseError, TryAgainError

from . import errors
from .events import script_header
from .script_contracts import A, K, R, Change, ContractError, Script

# The prelude's ARGV: event ids, trace id, producer (common/lua/prelude.lua).
HEADER_ARGS = 3

LUA_DIR = Path(__file__).parent / "lua"
PRELUDE = (LUA_DIR / "prelude.lua").read_text()
TRIP_LIBRARY = LUA_DIR / "trips.lua"
# How long a write waits for its replicas (WAIT and WAITAOF together) before
# it is answered 503.
WAIT_TIMEOUT_MS = 1000
# A script declares its function's flags in a line of its own, e.g.
# `--! flag: allow-oom` for one that only deletes and must run on a full Redis.
FLAGS = re.compile(r"^--! flag: ([a-z-]+)\s*$", re.M)
LOAD_HINT = "the admin loads them with `python -m common.scripts load` (REDIS_URL: the admin's)"


@dataclass(frozen=True, slots=True)
class Function:
    """One function of a library, by its name on the server."""

    name: str


class Library:
    """A Functions library: named bodies, each a `function(KEYS, ARGV)`,
    after `front` (the prelude and the libraries: local functions the bodies
    share, built once when the library is loaded rather than on each call)."""

    def __init__(self, name: str, prefix: str, bodies: dict[str, str], front: str = "") -> None:
        self.name = name
        self.prefix = prefix
        self.front = front
        self.bodies = dict(sorted(bodies.items()))
        digest = hashlib.sha256(f"{front}\0".encode())
        for stem, body in self.bodies.items():
            digest.update(f"{stem}\0{body}\0".encode())
        self.version = digest.hexdigest()[:16]
        self.code = self._render()

    def function(self, stem: str) -> Function:
        if stem not in self.bodies:
            raise KeyError(f"{self.name} has no function {stem!r}")
        return Function(f"{self.prefix}_{stem}")

    @property
    def version_function(self) -> Function:
        return Function(f"{self.prefix}__version")

    def names(self) -> list[str]:
        return list(self.bodies)

    def _render(self) -> str:
        parts = [f"#!lua name={self.name}", *([self.front] if self.front else [])]
        for stem, body in self.bodies.items():
            flags = FLAGS.findall(body)
            declared = (", flags={" + ", ".join(f"'{f}'" for f in flags) + "}") if flags else ""
            parts.append(
                f"redis.register_function{{function_name='{self.prefix}_{stem}', "
                f"callback=function(KEYS, ARGV)\n{body}\nend{declared}}}"
            )
        parts.append(
            f"redis.register_function{{function_name='{self.version_function.name}', "
            f"callback=function() return '{self.version}' end, flags={{'no-writes'}}}}"
        )
        return "\n".join(parts) + "\n"


def lua_library(
    name: str, prefix: str, directory: Path, contracts: Iterable[Script],
    libraries: Iterable[Path] = (), *, prelude: bool = True,
    extra: dict[str, str] | None = None,
) -> Library:
    """Every `*.lua` of `directory` a function, each declared by one of
    `contracts` (by its stem; a file without a declaration or a declaration
    without a file is an error): the prelude and the libraries (when
    `prelude`), the binding of its keys and arguments, its body. `extra`:
    bodies by name, declared like the files."""
    libraries = tuple(libraries)
    by_name = {script.name: script for script in contracts}
    sources = {path.stem: path.read_text() for path in sorted(directory.glob("*.lua"))}
    sources.update(extra or {})
    if set(sources) != set(by_name):
        raise ContractError(
            f"{name}: scripts without a declaration {sorted(set(sources) - set(by_name))}, "
            f"declarations without a script {sorted(set(by_name) - set(sources))}"
        )
    front = "\n".join([PRELUDE, *(lib.read_text() for lib in libraries)]) if prelude else ""
    first_arg = HEADER_ARGS + 1 if prelude else 1
    begin = "_begin(ARGV)" if prelude else ""
    bodies = {}
    for stem, source in sources.items():
        script = by_name[stem]
        script.check_body(source)
        bodies[stem] = "\n".join(
            part for part in (begin, script.binding(first_arg), source) if part
        )
    return Library(name, prefix, bodies, front)


def all_libraries() -> list[Library]:
    """Every library of the system, as the admin loads them."""
    from driver_service.scripts import LIBRARY as DRIVER
    from gateway.scripts import LIBRARY as GATEWAY
    from trip_service.scripts import LIBRARY as TRIP

    from .streams import LIBRARY as STREAMS

    return [TRIP, DRIVER, GATEWAY, STREAMS]


class FunctionsMissing(errors.Unavailable):
    def __init__(self, function: str) -> None:
        super().__init__(
            f"The database does not have the function {function}: {LOAD_HINT}.",
            headers={"Retry-After": "5"},
        )


def _missing(exc: ResponseError) -> bool:
    return "function not found" in str(exc).lower()


async def fcall(redis, function: Function, keys: list[str], args: list):
    try:
        return await redis.fcall(function.name, len(keys), *keys, *args)
    except ResponseError as exc:
        if _missing(exc):
            raise FunctionsMissing(function.name) from None
        raise


async def check_library(redis, library: Library) -> None:
    """Readiness: the server has this version of the library (raises, saying
    what to do, when it has none or another)."""
    try:
        found = await redis.fcall(library.version_function.name, 0)
    except ResponseError as exc:
        if _missing(exc):
            raise RuntimeError(f"functions {library.name} not loaded: {LOAD_HINT}") from None
        raise
    found = found.decode() if isinstance(found, bytes) else found
    if found != library.version:
        raise RuntimeError(
            f"functions {library.name} version {found} loaded, this code needs "
            f"{library.version}: {LOAD_HINT}"
        )


class Scripts:
    """The functions of one library, called by their declarations:
    `await scripts.call(SCRIPT, SCRIPT.keys.of(...), SCRIPT.args(name=...))`.

    With `producer` (the services), every call carries the event header of
    the prelude (event ids, trace id, producer) in front of its arguments.
    With `replicas` > 0 (WAIT_REPLICAS), a script declared `waits` goes with
    WAIT and WAITAOF behind it on its own connection; a `Change` reply `ok`
    then needs the replicas (else 503), and `exists` (an idempotent create
    replayed, whose first attempt may be unconfirmed) is confirmed by a
    write that changes nothing (`confirm_replay`)."""

    def __init__(self, redis, library: Library, producer: str | None = None,
                 replicas: int = 0) -> None:
        self.redis = redis
        self.library = library
        self.producer = producer
        self.replicas = replicas
        self._functions = {stem: library.function(stem) for stem in library.names()}

    def names(self) -> list[str]:
        return self.library.names()

    async def check(self) -> None:
        await check_library(self.redis, self.library)

    def _argv(self, script: Script, args, n_events: int | None = None) -> Sequence:
        script.check_args(args)
        if self.producer is None:
            return args
        header = script_header(self.producer, script.n_events if n_events is None else n_events)
        return (*header, *args)

    async def call(self, script: Script[K, A, R], keys: K, args: A, *,
                   n_events: int | None = None) -> R:
        """`n_events`: event ids to send, when not the declared number (a
        script that publishes only now and then asks for them)."""
        key_list = script.key_list(keys)
        argv = self._argv(script, args, n_events)
        function = self._functions[script.name]
        if self.replicas <= 0 or not script.waits:
            return script.reply(await fcall(self.redis, function, key_list, argv))
        # WAITAOF on the script's own connection: on disk on `replicas` replicas.
        raw, waited = await script_and_wait(self.redis, function, key_list, argv, self.replicas)
        reply = script.reply(raw)
        if isinstance(reply, Change):
            if reply.kind == "ok":
                require_replicas(waited, self.replicas)
            elif reply.kind == "exists":
                await confirm_replay(self.redis, key_list[0], reply.doc["id"], self.replicas)
        return reply

    async def call_and_wait(
        self, script: Script[K, A, R], keys: K, args: A, replicas: int, *,
        timeout_ms: int = WAIT_TIMEOUT_MS,
    ) -> tuple[R, object]:
        """Run a function, then wait until `replicas` replicas have its writes
        in their AOF, for at most `timeout_ms`, on the function's own
        connection (`write_and_wait`): `(its reply, WAITAOF reply or its
        error)`. Check the second with `require_replicas` when the function
        wrote (a refusal writes nothing)."""
        raw, waited = await script_and_wait(
            self.redis, self._functions[script.name], script.key_list(keys),
            self._argv(script, args), replicas, timeout_ms,
        )
        return script.reply(raw), waited


# --- WAIT_REPLICAS ----------------------------------------------------------
async def script_and_wait(
    redis, function: Function, keys: list[str], args: list, replicas: int,
    timeout_ms: int = WAIT_TIMEOUT_MS,
) -> tuple[object, object]:
    """`write_and_wait` of a function: `(function reply, WAITAOF reply or its
    error)`. A function missing from the server is a 503 that says what to
    do (nothing ran)."""
    reply, waited = await write_and_wait(
        redis, keys[0], ("FCALL", function.name, len(keys), *keys, *args), replicas, timeout_ms,
    )
    if isinstance(reply, ResponseError) and _missing(reply):
        raise FunctionsMissing(function.name)
    if isinstance(reply, Exception):
        raise reply
    return reply, waited


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


# --- loading (the admin) ------------------------------------------------------------
def load(admin_url: str, libraries: Iterable[Library] | None = None) -> list[str]:
    """FUNCTION LOAD REPLACE every library on the server, on every primary of
    a cluster (replicas get them by replication); the names loaded."""
    import redis as redis_sync

    from .redisconn import is_cluster_url

    libraries = list(all_libraries() if libraries is None else libraries)
    clients = []
    if is_cluster_url(admin_url):
        from urllib.parse import urlsplit

        from redis.cluster import RedisCluster

        url = admin_url.replace("+cluster", "", 1)
        cluster = RedisCluster.from_url(url)
        try:
            primaries = [(n.host, n.port) for n in cluster.get_primaries()]
        finally:
            cluster.close()
        parts = urlsplit(url)
        clients = [
            redis_sync.Redis(host=host, port=port, username=parts.username,
                             password=parts.password, ssl=parts.scheme == "rediss")
            for host, port in primaries
        ]
    else:
        clients = [redis_sync.Redis.from_url(admin_url)]
    try:
        for client in clients:
            for library in libraries:
                client.function_load(library.code, replace=True)
    finally:
        for client in clients:
            client.close()
    return [library.name for library in libraries]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else ""
    if command == "load":
        url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        names = load(url)
        print(f"loaded {', '.join(names)}")
        return 0
    if command == "show":
        for library in all_libraries():
            print(library.code)
        return 0
    print("usage: python -m common.scripts load|show  (REDIS_URL: the admin's URL)",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
