"""The gateway's Lua scripts (gateway/lua/), sent with EVALSHA and loaded on
demand, so they survive a restarted or replaced Redis.

They change no shared state and emit no events, so they do not take the
event prelude that the services' scripts share.
"""

from __future__ import annotations

from pathlib import Path

from redis.commands.core import AsyncScript

LUA_DIR = Path(__file__).parent / "lua"


class GatewayScripts:
    def __init__(self, redis) -> None:
        self._scripts: dict[str, AsyncScript] = {
            path.stem: redis.register_script(path.read_text())
            for path in sorted(LUA_DIR.glob("*.lua"))
        }

    async def run(self, name: str, keys: list[str], args: list):
        return await self._scripts[name](keys=keys, args=args)
