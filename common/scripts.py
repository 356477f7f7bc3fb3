"""Lua scripts: loaded from a package's `lua/` folder, the shared prelude and
any libraries prepended, sent with EVALSHA and loaded on demand (NOSCRIPT) on
whichever node serves the keys, so they work on a restarted server and on
every shard.

Libraries go between the prelude and the script: `TRIP_LIBRARY` holds the
helpers of every script that changes a trip (status counters, the ranking and
its indexes), in trip_service and driver_service alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from . import errors, metrics
from .events import script_header

LUA_DIR = Path(__file__).parent / "lua"
PRELUDE = (LUA_DIR / "prelude.lua").read_text()
TRIP_LIBRARY = LUA_DIR / "trips.lua"


def read_script(path: Path, libraries: Iterable[Path] = ()) -> str:
    return "\n".join([PRELUDE, *(lib.read_text() for lib in libraries), path.read_text()])


class Scripts:
    """The scripts of one service: `await scripts.run(name, keys, args, n_events)`."""

    def __init__(
        self, redis, directory: Path, producer: str, libraries: Iterable[Path] = ()
    ) -> None:
        self.producer = producer
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


class ScriptError(Exception):
    """A script refused with a code other than not_found/conflict."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def unpack(reply) -> tuple[str, dict | None]:
    """Scripts answer `{'ok', doc_json, 'type,type'}`, `{'exists', doc_json, ''}`
    or `{'err', code, detail}`. Count the published events; map refusals."""
    kind = reply[0]
    if kind == "err":
        code, detail = reply[1], reply[2]
        if code == "not_found":
            raise errors.NotFound(detail)
        if code == "conflict":
            raise errors.Conflict(detail)
        raise ScriptError(code, detail)
    doc = orjson.loads(reply[1]) if len(reply) > 1 and reply[1] else None
    if len(reply) > 2 and reply[2]:
        for type_ in reply[2].split(","):
            metrics.EVENTS_PUBLISHED.labels(type_).inc()
    return kind, doc


async def wait_for_replicas(redis, replicas: int, timeout_ms: int = 1000) -> None:
    """With replicas configured, an acknowledged write is on their disks too."""
    if replicas <= 0:
        return
    try:
        _local, acked = await redis.execute_command("WAITAOF", 0, replicas, timeout_ms)
    except ResponseError as exc:
        raise errors.Unavailable(f"cannot confirm the write on replicas: {exc}") from None
    if int(acked) < replicas:
        raise errors.Unavailable(
            f"the write reached {acked} of {replicas} replicas in time",
            headers={"Retry-After": "1"},
        )
