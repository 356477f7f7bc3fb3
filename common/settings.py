"""Typed settings, read from the environment in `main()` and passed in.

One frozen dataclass serves every process; a test builds its own with
`dataclasses.replace(Settings.from_env(...), ...)` or keyword arguments.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from .regions import DEFAULT_REGIONS, Region, parse_regions

DEFAULT_PORTS = {"gateway": 8080, "trip_service": 8081, "driver_service": 8082}


def env_int(env: dict, name: str, default: int) -> int:
    value = env.get(name)
    return default if value in (None, "") else int(value)


def env_float(env: dict, name: str, default: float) -> float:
    value = env.get(name)
    return default if value in (None, "") else float(value)


def env_str(env: dict, name: str, default: str) -> str:
    value = env.get(name)
    return default if value in (None, "") else value


@dataclass(frozen=True, slots=True)
class Settings:
    service: str = "gateway"
    host: str = "0.0.0.0"
    port: int = 8080
    # The operations listener (the gateway's): /metrics and /readyz in full,
    # no login; a port the deployment keeps off the public network. 0: none.
    ops_port: int = 0
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Connections per process; callers wait for a free one rather than fail.
    redis_max_connections: int = 64
    regions: tuple[Region, ...] = DEFAULT_REGIONS
    # `always`: an acknowledged write is on disk (AOF fsync per write).
    # `everysec`: faster, may lose up to one second of acknowledged writes.
    durability: str = "always"
    # Replicas that must confirm a write (WAIT/WAITAOF) before it is acknowledged.
    wait_replicas: int = 0
    trip_service_url: str = "http://127.0.0.1:8081"
    driver_service_url: str = "http://127.0.0.1:8082"
    upstream_timeout_s: float = 2.0
    offer_timeout_s: float = 15.0
    trip_expiry_s: float = 120.0
    dispatch_radius_m: float = 5000.0
    max_deliveries: int = 5
    # A pending entry idle this long is taken over from its (dead) consumer.
    claim_idle_ms: int = 10_000
    sweep_interval_s: float = 0.25
    rate_limit_per_token: float = 50.0
    login_failures_limit: int = 10
    session_ttl_s: int = 3600
    session_max_s: int = 7 * 86400
    ops_user_name: str = ""
    ops_password: str = ""
    # The service-to-service credential (common/internal.py): the gateway
    # sends it, trip_service and driver_service require it.
    internal_token: str = ""
    log_level: str = "INFO"
    consumer_name: str = field(default_factory=lambda: default_consumer_name("svc"))

    @property
    def default_region(self) -> Region:
        return self.regions[0]

    def region(self, name: str) -> Region | None:
        for region in self.regions:
            if region.name == name:
                return region
        return None

    @classmethod
    def from_env(cls, service: str, env: dict | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        durability = env_str(env, "DURABILITY", "always")
        if durability not in ("always", "everysec"):
            raise ValueError("DURABILITY must be 'always' or 'everysec'")
        return cls(
            service=service,
            host=env_str(env, "HOST", "0.0.0.0"),
            port=env_int(env, "PORT", DEFAULT_PORTS.get(service, 8080)),
            ops_port=env_int(env, "OPS_PORT", 0),
            redis_url=env_str(env, "REDIS_URL", "redis://127.0.0.1:6379/0"),
            redis_max_connections=env_int(env, "REDIS_MAX_CONNECTIONS", 64),
            regions=parse_regions(env.get("REGIONS")),
            durability=durability,
            wait_replicas=env_int(env, "WAIT_REPLICAS", 0),
            trip_service_url=env_str(env, "TRIP_SERVICE_URL", "http://127.0.0.1:8081").rstrip("/"),
            driver_service_url=env_str(env, "DRIVER_SERVICE_URL", "http://127.0.0.1:8082").rstrip(
                "/"
            ),
            upstream_timeout_s=env_float(env, "UPSTREAM_TIMEOUT_S", 2.0),
            offer_timeout_s=env_float(env, "OFFER_TIMEOUT_S", 15.0),
            trip_expiry_s=env_float(env, "TRIP_EXPIRY_S", 120.0),
            dispatch_radius_m=env_float(env, "DISPATCH_RADIUS_M", 5000.0),
            max_deliveries=env_int(env, "MAX_DELIVERIES", 5),
            claim_idle_ms=env_int(env, "CLAIM_IDLE_MS", 10_000),
            sweep_interval_s=env_float(env, "SWEEP_INTERVAL_S", 0.25),
            rate_limit_per_token=env_float(env, "RATE_LIMIT_PER_TOKEN", 50.0),
            login_failures_limit=env_int(env, "LOGIN_FAILURES_LIMIT", 10),
            session_ttl_s=env_int(env, "SESSION_TTL_S", 3600),
            session_max_s=env_int(env, "SESSION_MAX_S", 7 * 86400),
            ops_user_name=env_str(env, "OPS_USER_NAME", ""),
            ops_password=env_str(env, "OPS_PASSWORD", ""),
            internal_token=env_str(env, "INTERNAL_TOKEN", ""),
            log_level=env_str(env, "LOG_LEVEL", "INFO").upper(),
            consumer_name=env_str(env, "CONSUMER_NAME", default_consumer_name(service)),
        )


def default_consumer_name(service: str) -> str:
    """Unique per process: a restarted process is a new consumer, its
    predecessor's pending entries are reclaimed by idle time."""
    return f"{service}-{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
