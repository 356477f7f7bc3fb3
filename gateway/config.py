"""The gateway's settings: the shared ones (common/settings.py), its
service's and its tuning knobs, each declared once with its variable.

Read from the environment in `main()` and passed to `create_app`, so a test
builds an app with its own values.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import Settings, comma_list, env, url


@dataclass(frozen=True, slots=True)
class GatewaySettings(Settings):
    service: str = "gateway"
    trip_service_url: str = env("TRIP_SERVICE_URL", "http://127.0.0.1:8081", parse=url)
    driver_service_url: str = env("DRIVER_SERVICE_URL", "http://127.0.0.1:8082", parse=url)
    upstream_timeout_s: float = env("UPSTREAM_TIMEOUT_S", 2.0)
    # The farthest drop-off from its pickup, in a straight line (API.md: 422 beyond).
    max_trip_distance_m: float = env("MAX_TRIP_DISTANCE_M", 100_000.0)
    rate_limit_per_token: float = env("RATE_LIMIT_PER_TOKEN", 50.0)
    login_failures_limit: int = env("LOGIN_FAILURES_LIMIT", 10)
    session_ttl_s: int = env("SESSION_TTL_S", 3600)
    session_max_s: int = env("SESSION_MAX_S", 7 * 86400)
    # The ops account of the dashboard; no account without a name.
    ops_user_name: str = env("OPS_USER_NAME", "")
    ops_password: str = env("OPS_PASSWORD", "", secret=True)
    # Argon2id, the OWASP minimum profile (19 MiB, 2 passes, 1 lane): memory-hard,
    # about 40 ms per hash on one core of a small machine, so a load test on
    # 2 cores can log in about 50 users a second. Raise on bigger hosts.
    argon2_time_cost: int = env("ARGON2_TIME_COST", 2)
    argon2_memory_kib: int = env("ARGON2_MEMORY_KIB", 19 * 1024)
    argon2_parallelism: int = env("ARGON2_PARALLELISM", 1)
    # Hashes run in these threads: bounds the memory (threads x memory_kib) and
    # keeps the event loop free while a hash runs.
    hash_workers: int = env("HASH_WORKERS", 2)
    # Upstream calls: retries (idempotent calls only) with exponential backoff.
    upstream_retries: int = env("UPSTREAM_RETRIES", 2)
    upstream_backoff_s: float = env("UPSTREAM_BACKOFF_S", 0.05)
    # Circuit breaker: this many consecutive failures open it for cooldown_s;
    # then one probe call decides whether it closes again.
    breaker_failures: int = env("BREAKER_FAILURES", 5)
    breaker_cooldown_s: float = env("BREAKER_COOLDOWN_S", 2.0)
    # Admission (common/admission.py): at most max_in_flight requests in
    # flight in this process, and once in flight has stayed for half a second
    # above (measured completion rate x admission_delay_ms, 32 at least), at
    # most that; beyond, a request is answered 503 /problems/overloaded with
    # Retry-After at once instead of waiting its turn. Long polls, live
    # streams and the operations routes are not counted. MAX_IN_FLIGHT=0
    # turns admission off.
    max_in_flight: int = env("MAX_IN_FLIGHT", 128)
    admission_delay_ms: float = env("ADMISSION_DELAY_MS", 40.0)
    # Pooled connections per upstream.
    upstream_connections: int = env("UPSTREAM_CONNECTIONS", 200)
    # Idempotency records of POST /v1/trips live this long.
    idempotency_ttl_s: int = env("IDEMPOTENCY_TTL_S", 24 * 3600)
    # How long a second request with the same key waits for the first to finish.
    idempotency_wait_s: float = env("IDEMPOTENCY_WAIT_S", 5.0)
    # Login failures are counted over this window (API.md: 15 minutes).
    login_window_s: int = env("LOGIN_WINDOW_S", 15 * 60)
    # Failed logins from one address are limited at this multiple of the per-name limit.
    login_addr_factor: int = env("LOGIN_ADDR_FACTOR", 10)
    # SSE: events a slow client may have queued before it is dropped.
    sse_queue_size: int = env("SSE_QUEUE_SIZE", 256)
    sse_ping_s: float = env("SSE_PING_S", 15.0)
    # The region stream readers block this long per XREAD (well below the
    # Redis socket timeout).
    stream_block_ms: int = env("STREAM_BLOCK_MS", 1000)
    # Each Redis command of the gateway gets this long (and one retry), so a
    # hung Redis costs a request a bounded time: a 504 problem well before a
    # client's own timeout. Raised to stream_block_ms + 1 s if lower.
    redis_timeout_s: float = env("GATEWAY_REDIS_TIMEOUT_S", 2.0)
    # Per-account bounds (docs/security.md). Each answers a clear 429 with
    # Retry-After when reached, and 0 turns it off.
    # Open long polls (GET /v1/driver/offers/next) in this process, all
    # drivers together; each driver holds at most one (a new poll ends the
    # previous one). Long polls have a connection pool of this size to
    # driver_service of their own, so they never take the ordinary calls'.
    long_polls_max: int = env("LONG_POLLS_MAX", 500)
    # Live event streams (SSE) per session and in total, in this process.
    sse_per_session: int = env("SSE_PER_SESSION", 4)
    sse_max: int = env("SSE_MAX", 1000)
    # Sign-ups per client address within signup_window_s (every gateway replica together).
    signups_per_addr: int = env("SIGNUPS_PER_ADDR", 20)
    signup_window_s: int = env("SIGNUP_WINDOW_S", 600)
    # Password hashes waiting for a hashing thread; more are refused with 503.
    # Logins are hashed before waiting sign-ups, so a sign-up flood delays a
    # login by one hash at most.
    hash_queue_max: int = env("HASH_QUEUE_MAX", 32)
    # Client addresses of the proxies in front of the gateway (comma-separated
    # addresses or networks): only a request from one of them has its client
    # address taken from X-Forwarded-For (the nearest untrusted hop).
    trusted_proxies: tuple[str, ...] = env("TRUSTED_PROXIES", (), parse=comma_list)
    # On Redis Cluster: how often every node is asked CLUSTER SHARDS for the
    # ops topology and its failover feed (the feed's precision), and how long
    # a node may take to answer before it counts as unreachable.
    topology_poll_s: float = env("TOPOLOGY_POLL_S", 0.5)
    topology_timeout_s: float = env("TOPOLOGY_TIMEOUT_S", 0.4)
