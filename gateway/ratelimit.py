"""Rate limits kept in Redis, so every gateway replica enforces the same ones.

- Per session token: a token bucket (RATE_LIMIT_PER_TOKEN per second, bursts
  of twice that; 0 turns it off), one Lua step per request.
- Failed logins, in sliding 15-minute windows, kept so that nobody can lock
  a person out: a user name with LOGIN_FAILURES_LIMIT failures is locked only
  for the client addresses that failed on it (each address that had a failure
  for it gets 429 until enough have aged out); a client that has not failed
  for that name still logs in with the right password, and its one wrong
  guess locks it too. One address is limited at ten times that many
  failures over every name. The client address is the one TRUSTED_PROXIES
  allows (gateway/clientaddr.py). Successful logins are never counted.
- Sign-ups: SIGNUPS_PER_ADDR per client address within SIGNUP_WINDOW_S.
"""

from __future__ import annotations

import asyncio
import math
import os
import time
from dataclasses import dataclass

from prometheus_client import Counter

from common import errors, keys

from . import scripts as S
from .config import GatewaySettings
from .scripts import GatewayScripts

# Per-session bucket: a gateway takes up to this many tokens in one step and
# spends them on the session's next requests, so most requests write nothing
# to Redis. Tokens unused after HOLD_S are dropped: a session can get fewer
# requests than its limit through several gateways, never more.
RESERVE_TOKENS = 5
HOLD_S = 1.0
HELD_SESSIONS_MAX = 100_000

RATE_LIMITED = Counter(
    "gateway_rate_limited_total", "Requests refused with 429", ["limit"]
)
LOGINS = Counter("gateway_logins_total", "Login attempts", ["outcome"])


def _retry_after(ms: int) -> str:
    return str(max(1, math.ceil(ms / 1000)))


@dataclass(slots=True)
class Ticket:
    """One request's ask of its session's bucket (RateLimiter.ask)."""

    token_hash: str
    take: int
    asking: asyncio.Future | None = None


class RateLimiter:
    def __init__(self, scripts: GatewayScripts, settings: GatewaySettings) -> None:
        self.scripts = scripts
        self.rate = settings.rate_limit_per_token
        self.burst = 2 * settings.rate_limit_per_token
        self.login_limit = settings.login_failures_limit
        self.addr_limit = settings.login_failures_limit * settings.login_addr_factor
        self.window_ms = settings.login_window_s * 1000
        self.signup_limit = settings.signups_per_addr
        self.signup_window_ms = settings.signup_window_s * 1000
        # session token hash -> (tokens taken from its bucket not used yet, until)
        self._held: dict[str, tuple[int, float]] = {}
        # session token hash -> the ask for a few tokens in flight
        self._asking: dict[str, asyncio.Future] = {}

    def bucket(self) -> tuple[float, float]:
        """(rate, burst) of the per-session bucket that authentication takes
        tokens from in the same step as the session read; (0, 0) when off."""
        return (self.rate, self.burst) if self.rate > 0 else (0.0, 0.0)

    def ask(self, token_hash: str) -> "Ticket":
        """How many tokens this request asks of its session's bucket: none when
        this process holds one it took earlier (used now), one while another
        request of the session is asking for a few, else a few."""
        if self.rate <= 0 or self._use_held(token_hash):
            return Ticket(token_hash, 0)
        if token_hash in self._asking:
            return Ticket(token_hash, 1)
        ticket = Ticket(token_hash, RESERVE_TOKENS, asyncio.get_running_loop().create_future())
        self._asking[token_hash] = ticket.asking
        return ticket

    async def settle(self, principal, ticket: "Ticket") -> None:
        """After authentication took `principal.tokens_taken` of the tokens the
        ticket asked for: keep those the request did not need, or 429 when
        the bucket had none and no request of the session brings any."""
        if ticket.take == 0:
            return
        if principal.tokens_taken >= 1:
            if principal.tokens_taken > 1:
                self._hold(ticket.token_hash, principal.tokens_taken - 1)
            return
        for _ in range(3):
            if self._use_held(ticket.token_hash):
                return
            pending = self._asking.get(ticket.token_hash)
            if pending is None or pending is ticket.asking:
                break
            # Another request of the session is taking a few: wait for them.
            await asyncio.shield(pending)
        if self._use_held(ticket.token_hash):
            return
        RATE_LIMITED.labels("token").inc()
        raise errors.TooManyRequests(
            f"More than {self.rate:g} requests per second on this session.",
            headers={"Retry-After": _retry_after(principal.rate_wait_ms)},
        )

    def release(self, ticket: "Ticket") -> None:
        """The end of a request's ask (whatever happened): wake those waiting on it."""
        if ticket.asking is not None:
            if self._asking.get(ticket.token_hash) is ticket.asking:
                del self._asking[ticket.token_hash]
            if not ticket.asking.done():
                ticket.asking.set_result(None)

    def _use_held(self, token_hash: str) -> bool:
        held = self._held.get(token_hash)
        if held is None:
            return False
        count, until = held
        if until < time.monotonic():
            del self._held[token_hash]
            return False
        if count <= 1:
            del self._held[token_hash]
        else:
            self._held[token_hash] = (count - 1, until)
        return True

    def _hold(self, token_hash: str, count: int) -> None:
        now = time.monotonic()
        if len(self._held) >= HELD_SESSIONS_MAX:
            self._held = {k: v for k, v in self._held.items() if v[1] >= now}
            if len(self._held) >= HELD_SESSIONS_MAX:
                return  # drop the surplus: a session gets fewer, never more
        held = self._held.get(token_hash)
        if held is not None and held[1] >= now:
            count += held[0]
        self._held[token_hash] = (count, now + HOLD_S)

    async def check_signup(self, addr: str) -> None:
        """Take a sign-up place of the client address, or 429."""
        if self.signup_limit <= 0:
            return
        wait = await self.scripts.call(
            S.WINDOW_TAKE, S.WindowKeys(keys.signups_addr(addr)),
            S.WindowTakeArgs(window_ms=self.signup_window_ms, limit=self.signup_limit,
                             member=os.urandom(8).hex()),
        )
        if wait:
            RATE_LIMITED.labels("signup_addr").inc()
            raise errors.TooManyRequests(
                f"More than {self.signup_limit} sign-ups from this address within "
                f"{self.signup_window_ms // 1000} s; retry later.",
                headers={"Retry-After": _retry_after(wait)},
            )

    async def check_login(self, user_name: str, addr: str) -> None:
        """Refuse a login from an address locked out for this name, or in all."""
        if self.login_limit <= 0:
            return
        w = self.window_ms
        pair = S.WindowKeys(keys.login_failures_pair(user_name, addr))
        wait_pair, wait_user, wait_addr, pair_failed = await asyncio.gather(
            self.scripts.call(S.WINDOW_CHECK, pair,
                              S.WindowCheckArgs(window_ms=w, limit=self.login_limit)),
            self.scripts.call(S.WINDOW_CHECK, S.WindowKeys(keys.login_failures_user(user_name)),
                              S.WindowCheckArgs(window_ms=w, limit=self.login_limit)),
            self.scripts.call(S.WINDOW_CHECK, S.WindowKeys(keys.login_failures_addr(addr)),
                              S.WindowCheckArgs(window_ms=w, limit=self.addr_limit)),
            # Has this address failed for this name at all (within the window)?
            self.scripts.call(S.WINDOW_CHECK, pair, S.WindowCheckArgs(window_ms=w, limit=1)),
        )
        # A name under attack stays open to the addresses that have not failed on it.
        locked_for_name = wait_pair or (wait_user and pair_failed)
        if locked_for_name or wait_addr:
            which = "user name" if locked_for_name else "client address"
            if locked_for_name:
                wait = max(wait_pair, min(wait_user, pair_failed) if wait_user else 0)
            else:
                wait = wait_addr
            RATE_LIMITED.labels("login_user" if locked_for_name else "login_addr").inc()
            LOGINS.labels("locked").inc()
            raise errors.TooManyRequests(
                f"Too many failed logins for this {which} from this client; retry later.",
                headers={"Retry-After": _retry_after(wait)},
            )

    async def login_failed(self, user_name: str, addr: str) -> None:
        LOGINS.labels("failed").inc()
        if self.login_limit <= 0:
            return
        member = os.urandom(8).hex()
        await asyncio.gather(
            *(
                self.scripts.call(S.WINDOW_ADD, S.WindowKeys(key),
                                  S.WindowAddArgs(window_ms=self.window_ms, member=member))
                for key in (
                    keys.login_failures_user(user_name),
                    keys.login_failures_addr(addr),
                    keys.login_failures_pair(user_name, addr),
                )
            )
        )
