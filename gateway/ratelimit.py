"""Rate limits kept in Redis, so every gateway replica enforces the same ones.

- Per session token: a token bucket (RATE_LIMIT_PER_TOKEN per second, bursts
  of twice that; 0 turns it off), one Lua step per request.
- Failed logins: a sliding 15-minute window of failures per user name
  (LOGIN_FAILURES_LIMIT) and per client address (ten times that). Once a
  window is full, every login for that name (or from that address) gets 429
  until enough failures have aged out, whatever the password. Successful
  logins and sign-ups are never counted.
"""

from __future__ import annotations

import math
import os

from prometheus_client import Counter

from common import errors, keys
from common.settings import Settings

from .config import GatewayConfig
from .scripts import GatewayScripts

RATE_LIMITED = Counter(
    "gateway_rate_limited_total", "Requests refused with 429", ["limit"]
)
LOGINS = Counter("gateway_logins_total", "Login attempts", ["outcome"])


def _retry_after(ms: int) -> str:
    return str(max(1, math.ceil(ms / 1000)))


class RateLimiter:
    def __init__(self, scripts: GatewayScripts, settings: Settings, config: GatewayConfig) -> None:
        self.scripts = scripts
        self.rate = settings.rate_limit_per_token
        self.burst = 2 * settings.rate_limit_per_token
        self.login_limit = settings.login_failures_limit
        self.addr_limit = settings.login_failures_limit * config.login_addr_factor
        self.window_ms = config.login_window_s * 1000

    def bucket(self) -> tuple[float, float]:
        """(rate, burst) of the per-session bucket that authentication takes a
        token from in the same step as the session read; (0, 0) when off."""
        return (self.rate, self.burst) if self.rate > 0 else (0.0, 0.0)

    def refuse(self, wait_ms: int) -> None:
        """429 when authentication found the session's bucket empty."""
        if wait_ms > 0:
            RATE_LIMITED.labels("token").inc()
            raise errors.TooManyRequests(
                f"More than {self.rate:g} requests per second on this session.",
                headers={"Retry-After": _retry_after(wait_ms)},
            )

    async def check_token(self, token_hash: str) -> None:
        """A bucket of its own key (the request path uses `bucket()` instead)."""
        if self.rate <= 0:
            return
        allowed, wait_ms = await self.scripts.run(
            "token_bucket", [keys.rate_token(token_hash)], [self.rate, self.burst]
        )
        if not int(allowed):
            RATE_LIMITED.labels("token").inc()
            raise errors.TooManyRequests(
                f"More than {self.rate:g} requests per second on this session.",
                headers={"Retry-After": _retry_after(int(wait_ms))},
            )

    async def check_login(self, user_name: str, addr: str) -> None:
        """Refuse a login while its user name or address is locked out."""
        if self.login_limit <= 0:
            return
        wait_user = int(
            await self.scripts.run(
                "window_check",
                [keys.login_failures_user(user_name)],
                [self.window_ms, self.login_limit],
            )
        )
        wait_addr = int(
            await self.scripts.run(
                "window_check", [keys.login_failures_addr(addr)], [self.window_ms, self.addr_limit]
            )
        )
        if wait_user or wait_addr:
            which = "user name" if wait_user >= wait_addr else "client address"
            RATE_LIMITED.labels("login_user" if wait_user >= wait_addr else "login_addr").inc()
            LOGINS.labels("locked").inc()
            raise errors.TooManyRequests(
                f"Too many failed logins for this {which}; retry later.",
                headers={"Retry-After": _retry_after(max(wait_user, wait_addr))},
            )

    async def login_failed(self, user_name: str, addr: str) -> None:
        LOGINS.labels("failed").inc()
        if self.login_limit <= 0:
            return
        member = os.urandom(8).hex()
        await self.scripts.run(
            "window_add", [keys.login_failures_user(user_name)], [self.window_ms, member]
        )
        await self.scripts.run(
            "window_add", [keys.login_failures_addr(addr)], [self.window_ms, member]
        )
