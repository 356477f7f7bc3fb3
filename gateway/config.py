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
    # On Redis Cluster: how often every node is asked CLUSTER SHARDS for the
    # ops topology and its failover feed (the feed's precision), and how long
    # a node may take to answer before it counts as unreachable.
    topology_poll_s: float = 0.5
    topology_timeout_s: float = 0.4

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
            topology_poll_s=_float(env, "TOPOLOGY_POLL_S", d.topology_poll_s),
            topology_timeout_s=_float(env, "TOPOLOGY_TIMEOUT_S", d.topology_timeout_s),
        )
