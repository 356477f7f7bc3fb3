"""The gateway's Lua scripts (gateway/lua/), declared once: the keys of each
(built by its `Keys.of`), its arguments and its reply; the Lua reads them as
`K.<key>` and `A.<arg>` (common/script_contracts.py). They are the Functions
library `ridehail_gateway`, loaded by the admin (common/scripts.py), called
with FCALL.

They change no shared state and emit no events, so they do not take the
event prelude that the services' scripts share.

Under `WAIT_REPLICAS` > 0 a script whose write a client sees acknowledged
(a session, an account's activation, an idempotency record's replay) goes
through `call_and_wait`: the script, WAIT and WAITAOF on one connection
(common.scripts.write_and_wait: why there).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from common import keys
from common.script_contracts import NoArgs, Script
from common.scripts import Scripts, lua_library

LUA_DIR = Path(__file__).parent / "lua"
# Only under WAIT_REPLICAS > 0, before a stored idempotent answer is replayed:
# the record rewritten unchanged (same value, KEEPTTL). The first attempt's
# write may have been answered 503 (written, not confirmed); this write, with
# the WAITAOF behind it on the same connection, confirms that one too (like
# common.scripts.confirm_replay). 1 if the record was there.
# Here rather than in lua/ because only call_and_wait sends it.
IDEM_TOUCH = """
local raw = redis.call('GET', K.record)
if not raw then
  return 0
end
redis.call('SET', K.record, raw, 'KEEPTTL')
return 1
"""


def done(reply) -> bool:
    """1: the script wrote; 0: nothing to do (not ours, or gone)."""
    return bool(reply)


def wait_ms(reply) -> int:
    """0, or the ms until the window has a place again."""
    return int(reply)


# --- accounts and sessions -----------------------------------------------------
class AccountKeys(NamedTuple):
    account: str

    @classmethod
    def of(cls, user_name: str) -> AccountKeys:
        return cls(keys.account(user_name))


class AccountCasArgs(NamedTuple):
    subject_id: str  # the record is changed only if it is this subject's
    value: str | bytes  # the new record (JSON), or '' to delete it


ACCOUNT_CAS = Script("account_cas", AccountKeys, AccountCasArgs, done)


class SessionKeys(NamedTuple):
    session: str

    @classmethod
    def of(cls, token_digest: str) -> SessionKeys:
        return cls(keys.session(token_digest))


class SessionCreateArgs(NamedTuple):
    subject_id: str
    role: str
    region: str
    user_name: str
    ttl_ms: int  # the sliding expiry
    max_ms: int  # the absolute limit


SESSION_CREATE = Script("session_create", SessionKeys, SessionCreateArgs, int)


class SessionTouchArgs(NamedTuple):
    ttl_ms: int
    rate: float  # the bucket's refill per second (0: no limit)
    burst: float  # its capacity
    take: int  # tokens to take at most
    min_move_ms: int  # the least move of the expiry worth a write


class Session(NamedTuple):
    subject_id: str
    role: str
    region: str
    user_name: str
    expires_ms: int
    taken: int  # tokens taken from the bucket
    wait_ms: int  # until a token is available, when none was


def session(reply) -> Session | None:
    if not reply:
        return None
    subject_id, role, region, user_name, expires, taken, wait = reply
    return Session(subject_id, role, region, user_name, int(expires), int(taken), int(wait))


SESSION_TOUCH = Script("session_touch", SessionKeys, SessionTouchArgs, session)


# --- idempotency ---------------------------------------------------------------------
class RecordKeys(NamedTuple):
    record: str

    @classmethod
    def of(cls, subject_id: str, key_hash: str) -> RecordKeys:
        return cls(keys.idempotency(subject_id, key_hash))


class IdemAcquireArgs(NamedTuple):
    fingerprint: str
    owner: str
    lease_ms: int
    ttl_ms: int
    trip_id: str  # reserved for a new record


class Acquired(NamedTuple):
    """acquired (with the record's trip id), mismatch, busy, or done (with
    the stored answer)."""

    state: str
    trip_id: str | None = None
    status: int | None = None
    body: str | None = None


def acquired(reply) -> Acquired:
    state = reply[0]
    if state == "acquired":
        return Acquired(state, trip_id=reply[1])
    if state == "done":
        return Acquired(state, status=int(reply[1]), body=reply[2])
    return Acquired(state)


IDEM_ACQUIRE = Script("idem_acquire", RecordKeys, IdemAcquireArgs, acquired)


class IdemFinishArgs(NamedTuple):
    owner: str
    outcome: str  # done | forget | unknown
    status: int
    body: str | bytes
    ttl_ms: int


IDEM_FINISH = Script("idem_finish", RecordKeys, IdemFinishArgs, done)
IDEM_TOUCH_SCRIPT = Script("idem_touch", RecordKeys, NoArgs, done)


# --- sliding windows (sign-ups, failed logins) ------------------------------------------
class WindowKeys(NamedTuple):
    window: str


class WindowCheckArgs(NamedTuple):
    window_ms: int
    limit: int


class WindowTakeArgs(NamedTuple):
    window_ms: int
    limit: int
    member: str  # unique


class WindowAddArgs(NamedTuple):
    window_ms: int
    member: str  # unique


WINDOW_CHECK = Script("window_check", WindowKeys, WindowCheckArgs, wait_ms)
WINDOW_TAKE = Script("window_take", WindowKeys, WindowTakeArgs, wait_ms)
WINDOW_ADD = Script("window_add", WindowKeys, WindowAddArgs, int)


SCRIPTS: tuple[Script, ...] = (
    ACCOUNT_CAS, SESSION_CREATE, SESSION_TOUCH, IDEM_ACQUIRE, IDEM_FINISH, IDEM_TOUCH_SCRIPT,
    WINDOW_CHECK, WINDOW_TAKE, WINDOW_ADD,
)

LIBRARY = lua_library("ridehail_gateway", "gw", LUA_DIR, SCRIPTS, prelude=False,
                      extra={"idem_touch": IDEM_TOUCH})


class GatewayScripts(Scripts):
    """The gateway's functions: `call` (never waits; the call sites decide
    which writes wait, with `call_and_wait`)."""

    def __init__(self, redis) -> None:
        super().__init__(redis, LIBRARY)
