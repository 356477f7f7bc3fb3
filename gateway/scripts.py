"""The gateway's Lua scripts (gateway/lua/), sent with EVALSHA and loaded on
demand, so they survive a restarted or replaced Redis.

They change no shared state and emit no events, so they do not take the
event prelude that the services' scripts share.

Under `WAIT_REPLICAS` > 0 a script whose write a client sees acknowledged
(a session, an account's activation, an idempotency record's replay) goes
through `run_and_wait`: the script, WAIT and WAITAOF on one connection
(common.scripts.write_and_wait: why there).
"""

from __future__ import annotations

from pathlib import Path

from redis.commands.core import AsyncScript

from common.scripts import WAIT_TIMEOUT_MS, script_and_wait

LUA_DIR = Path(__file__).parent / "lua"
# Only under WAIT_REPLICAS > 0, before a stored idempotent answer is replayed:
# the record rewritten unchanged (same value, KEEPTTL). The first attempt's
# write may have been answered 503 (written, not confirmed); this write, with
# the WAITAOF behind it on the same connection, confirms that one too (like
# common.scripts.confirm_replay). KEYS[1] the record; 1 if it was there.
# Here rather than in lua/ because only run_and_wait sends it.
IDEM_TOUCH = """
local raw = redis.call('GET', KEYS[1])
if not raw then
  return 0
end
redis.call('SET', KEYS[1], raw, 'KEEPTTL')
return 1
"""


class GatewayScripts:
    def __init__(self, redis) -> None:
        self.redis = redis
        self._scripts: dict[str, AsyncScript] = {
            path.stem: redis.register_script(path.read_text())
            for path in sorted(LUA_DIR.glob("*.lua"))
        }
        self._scripts["idem_touch"] = redis.register_script(IDEM_TOUCH)

    async def run(self, name: str, keys: list[str], args: list):
        return await self._scripts[name](keys=keys, args=args)

    async def run_and_wait(
        self, name: str, keys: list[str], args: list, replicas: int, *,
        timeout_ms: int = WAIT_TIMEOUT_MS,
    ) -> tuple[object, object]:
        """Run a script, then wait until `replicas` replicas have its writes
        in their AOF, for at most `timeout_ms`, on the script's own connection:
        `(script reply, WAITAOF reply or its error)`. Check the second with
        `common.scripts.require_replicas` when the script wrote. A script
        missing from the server (NOSCRIPT) is loaded and all sent again:
        nothing ran."""
        return await script_and_wait(self.redis, self._scripts[name], keys, args, replicas,
                                     timeout_ms)
