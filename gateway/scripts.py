"""The gateway's Lua scripts (gateway/lua/): the Functions library
`ridehail_gateway`, loaded by the admin (common/scripts.py), called with FCALL.

They change no shared state and emit no events, so they do not take the
event prelude that the services' scripts share.

Under `WAIT_REPLICAS` > 0 a script whose write a client sees acknowledged
(a session, an account's activation, an idempotency record's replay) goes
through `run_and_wait`: the script, WAIT and WAITAOF on one connection
(common.scripts.write_and_wait: why there).
"""

from __future__ import annotations

from pathlib import Path

from common.scripts import WAIT_TIMEOUT_MS, check_library, fcall, lua_library, script_and_wait

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


LIBRARY = lua_library("ridehail_gateway", "gw", LUA_DIR, prelude=False,
                      extra={"idem_touch": IDEM_TOUCH})


class GatewayScripts:
    def __init__(self, redis) -> None:
        self.redis = redis

    async def check(self) -> None:
        """Readiness: the server has this version of the gateway's functions."""
        await check_library(self.redis, LIBRARY)

    async def run(self, name: str, keys: list[str], args: list):
        return await fcall(self.redis, LIBRARY.function(name), keys, args)

    async def run_and_wait(
        self, name: str, keys: list[str], args: list, replicas: int, *,
        timeout_ms: int = WAIT_TIMEOUT_MS,
    ) -> tuple[object, object]:
        """Run a function, then wait until `replicas` replicas have its writes
        in their AOF, for at most `timeout_ms`, on the function's own
        connection: `(function reply, WAITAOF reply or its error)`. Check the
        second with `common.scripts.require_replicas` when the function wrote."""
        return await script_and_wait(self.redis, LIBRARY.function(name), keys, args, replicas,
                                     timeout_ms)
