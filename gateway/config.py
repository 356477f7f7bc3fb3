"""Settings of the gateway alone, next to the shared `common.settings.Settings`.

Read from the environment in `main()` and passed to `create_app`, so a test
builds an app with its own values.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from common.settings import env_float as _float
from common.settings import env_int as _int


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    # Argon2id, the OWASP minimum profile (19 MiB, 2 passes, 1 lane): memory-hard,
    # about 40 ms per hash on one core of a small machine, so a load test on
    # 2 cores can log in about 50 users a second. Raise on bigger hosts.
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19 * 1024
    argon2_parallelism: int = 1
    # Hashes run in these threads: bounds the memory (threads x memory_kib) and
    # keeps the event loop free while a hash runs.
    hash_workers: int = 2
    # Upstream calls: retries (idempotent calls only) with exponential backoff.
    upstream_retries: int = 2
    upstream_backoff_s: float = 0.05
    # Circuit breaker: this many consecutive failures open it for cooldown_s;
    # then one probe call decides whether it closes again.
    breaker_failures: int = 5
    breaker_cooldown_s: float = 2.0
    # Pooled connections per upstream.
    upstream_connections: int = 200
    # Idempotency records of POST /v1/trips live this long.
    idempotency_ttl_s: int = 24 * 3600
    # How long a second request with the same key waits for the first to finish.
    idempotency_wait_s: float = 5.0
    # Login failures are counted over this window (API.md: 15 minutes).
    login_window_s: int = 15 * 60
    # Failed logins from one address are limited at this multiple of the per-name limit.
    login_addr_factor: int = 10
    # SSE: events a slow client may have queued before it is dropped.
    sse_queue_size: int = 256
    sse_ping_s: float = 15.0
    # The region stream readers block this long per XREAD (well below the
    # Redis socket timeout).
    stream_block_ms: int = 1000
    # Each Redis command of the gateway gets this long (and one retry), so a
    # hung Redis costs a request a bounded time: a 504 problem well before a
    # client's own timeout. Raised to stream_block_ms + 1 s if lower.
    redis_timeout_s: float = 2.0
    # Per-account bounds (docs/security.md). Each answers a clear 429 with
    # Retry-After when reached, and 0 turns it off.
    # Open long polls (GET /v1/driver/offers/next) in this process, all
    # drivers together; each driver holds at most one (a new poll ends the
    # previous one). Long polls have a connection pool of this size to
    # driver_service of their own, so they never take the ordinary calls'.
    long_polls_max: int = 500
    # Live event streams (SSE) per session and in total, in this process.
    sse_per_session: int = 4
    sse_max: int = 1000
    # Sign-ups per client address within signup_window_s (every gateway replica together).
    signups_per_addr: int = 20
    signup_window_s: int = 600
    # Password hashes waiting for a hashing thread; more are refused with 503.
    # Logins are hashed before waiting sign-ups, so a sign-up flood delays a
    # login by one hash at most.
    hash_queue_max: int = 32
    # Client addresses of the proxies in front of the gateway (comma-separated
    # addresses or networks): only a request from one of them has its client
    # address taken from X-Forwarded-For (the nearest untrusted hop).
    trusted_proxies: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: dict | None = None) -> "GatewayConfig":
        env = dict(os.environ if env is None else env)
        d = cls()
        return cls(
            argon2_time_cost=_int(env, "ARGON2_TIME_COST", d.argon2_time_cost),
            argon2_memory_kib=_int(env, "ARGON2_MEMORY_KIB", d.argon2_memory_kib),
            argon2_parallelism=_int(env, "ARGON2_PARALLELISM", d.argon2_parallelism),
            hash_workers=_int(env, "HASH_WORKERS", d.hash_workers),
            upstream_retries=_int(env, "UPSTREAM_RETRIES", d.upstream_retries),
            upstream_backoff_s=_float(env, "UPSTREAM_BACKOFF_S", d.upstream_backoff_s),
            breaker_failures=_int(env, "BREAKER_FAILURES", d.breaker_failures),
            breaker_cooldown_s=_float(env, "BREAKER_COOLDOWN_S", d.breaker_cooldown_s),
            upstream_connections=_int(env, "UPSTREAM_CONNECTIONS", d.upstream_connections),
            idempotency_ttl_s=_int(env, "IDEMPOTENCY_TTL_S", d.idempotency_ttl_s),
            idempotency_wait_s=_float(env, "IDEMPOTENCY_WAIT_S", d.idempotency_wait_s),
            login_window_s=_int(env, "LOGIN_WINDOW_S", d.login_window_s),
            login_addr_factor=_int(env, "LOGIN_ADDR_FACTOR", d.login_addr_factor),
            sse_queue_size=_int(env, "SSE_QUEUE_SIZE", d.sse_queue_size),
            sse_ping_s=_float(env, "SSE_PING_S", d.sse_ping_s),
            stream_block_ms=_int(env, "STREAM_BLOCK_MS", d.stream_block_ms),
            redis_timeout_s=_float(env, "GATEWAY_REDIS_TIMEOUT_S", d.redis_timeout_s),
            long_polls_max=_int(env, "LONG_POLLS_MAX", d.long_polls_max),
            sse_per_session=_int(env, "SSE_PER_SESSION", d.sse_per_session),
            sse_max=_int(env, "SSE_MAX", d.sse_max),
            signups_per_addr=_int(env, "SIGNUPS_PER_ADDR", d.signups_per_addr),
            signup_window_s=_int(env, "SIGNUP_WINDOW_S", d.signup_window_s),
            hash_queue_max=_int(env, "HASH_QUEUE_MAX", d.hash_queue_max),
            trusted_proxies=tuple(
                p.strip() for p in env.get("TRUSTED_PROXIES", "").split(",") if p.strip()
            ),
        )
