"""Lua scripts: loaded from a package's `lua/` folder, the shared prelude
prepended, sent with EVALSHA and loaded on demand (NOSCRIPT) on whichever node
serves the keys, so they work on a restarted server and on every shard."""

from __future__ import annotations

from pathlib import Path

from redis.commands.core import AsyncScript

from .events import script_header

PRELUDE = (Path(__file__).parent / "lua" / "prelude.lua").read_text()


def read_script(path: Path) -> str:
    return PRELUDE + "\n" + path.read_text()


class Scripts:
    """The scripts of one service: `await scripts.run(name, keys, args, n_events)`."""

    def __init__(self, redis, directory: Path, producer: str) -> None:
        self.producer = producer
        self._scripts: dict[str, AsyncScript] = {
            path.stem: redis.register_script(read_script(path))
            for path in sorted(directory.glob("*.lua"))
        }

    def names(self) -> list[str]:
        return sorted(self._scripts)

    async def run(self, name: str, keys: list[str], args: list, *, n_events: int = 4):
        header = script_header(self.producer, n_events)
        return await self._scripts[name](keys=keys, args=[*header, *args])
