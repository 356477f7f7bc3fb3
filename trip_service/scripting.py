"""Lua scripts with shared libraries.

`common.scripts.Scripts` prepends the prelude to each script; these scripts
also need the trip helpers (status counters, the ranking and its indexes)
that every script changing a trip shares, in trip_service and driver_service
alike. A library goes between the prelude and the script.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import orjson
from redis.exceptions import ResponseError

from common import errors, metrics
from common.scripts import PRELUDE, Scripts

LUA_DIR = Path(__file__).parent / "lua"
TRIP_LIBRARY = LUA_DIR / "lib" / "trip.lua"


class ScriptSet(Scripts):
    def __init__(self, redis, directory: Path, producer: str, libraries: Iterable[Path] = ()):
        self.producer = producer
        library = "\n".join(path.read_text() for path in libraries)
        self._scripts = {
            path.stem: redis.register_script(f"{PRELUDE}\n{library}\n{path.read_text()}")
            for path in sorted(directory.glob("*.lua"))
        }


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
