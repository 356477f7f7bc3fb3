"""Shared pieces of the proofs: a system of real processes on a real embedded
Redis, the proofs' client of the public API (tests/client.py, reporting a
failed call instead of raising), and the figures every proof reports (printed
at the end of the run and written to reports/proofs.json)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from common.embedded import EmbeddedRedis, free_port
from tests.client import ApiClient
from tests.harness import ROOT, System

REPORT = ROOT / "reports" / "proofs.json"

# Short timers and cheap hashing: the proofs are about durability and
# failure handling, not about the cost of argon2.
PROOF_ENV = {
    "OFFER_TIMEOUT_S": "3",
    "TRIP_EXPIRY_S": "30",
    "DISPATCH_RADIUS_M": "5000",
    "SWEEP_INTERVAL_S": "0.1",
    "CLAIM_IDLE_MS": "1000",
    "RATE_LIMIT_PER_TOKEN": "0",
    "LOGIN_FAILURES_LIMIT": "0",
    "UPSTREAM_TIMEOUT_S": "2",
    "BREAKER_COOLDOWN_S": "0.5",
    "ARGON2_TIME_COST": "1",
    "ARGON2_MEMORY_KIB": "1024",
    # The load signs many users up at once from one address: the per-account
    # bounds (docs/security.md) have proofs of their own (tests/security).
    "HASH_QUEUE_MAX": "0",
    "SIGNUPS_PER_ADDR": "0",
    "SSE_PING_S": "1",
    "STREAM_BLOCK_MS": "200",
    "LOG_LEVEL": "WARNING",
}

# Downtown San Francisco, inside the default region `sf`.
CENTER = {"lat": 37.7749, "lon": -122.4194}


def around(point: dict, d_lat: float = 0.0, d_lon: float = 0.0) -> dict:
    return {"lat": round(point["lat"] + d_lat, 6), "lon": round(point["lon"] + d_lon, 6)}


# --- figures ------------------------------------------------------------------
_figures: dict[str, Any] = {}
_lock = threading.Lock()


def record_figures(name: str, values: dict[str, Any]) -> None:
    """Keep one proof's figures for the summary (merged by name)."""
    with _lock:
        _figures.setdefault(name, {}).update(values)
        REPORT.parent.mkdir(parents=True, exist_ok=True)
        existing: dict[str, Any] = {}
        if REPORT.exists():
            try:
                existing = json.loads(REPORT.read_text())
            except ValueError:
                existing = {}
        existing.update(_figures)
        REPORT.write_text(json.dumps(existing, indent=2, sort_keys=True) + "\n")


def figures() -> dict[str, Any]:
    with _lock:
        return {k: dict(v) for k, v in _figures.items()}


# --- the system ---------------------------------------------------------------
@dataclass
class ProofSystem:
    redis: EmbeddedRedis
    system: System

    @property
    def url(self) -> str:
        return self.system.url

    def stop(self) -> None:
        self.system.stop()
        self.redis.stop()


def start_proof_system(
    base: Path, *, redis_args: list[str] | None = None, replicas: int = 1, **env: str
) -> ProofSystem:
    redis = EmbeddedRedis(base / "redis", free_port(), extra_args=list(redis_args or [])).start()
    system = System(redis.url, base, env={**PROOF_ENV, **env}, replicas=replicas)
    try:
        system.start()
    except BaseException:
        system.stop()
        redis.stop()
        raise
    return ProofSystem(redis, system)


# --- the proofs' client -------------------------------------------------------
def proof_client(session: aiohttp.ClientSession, base: str) -> ApiClient:
    """A client that never raises on a call without an answer: it is a Reply
    with status 0 and the error (connection refused, reset, its own timeout,
    10 s unless the call says otherwise)."""
    return ApiClient(session, base, timeout=10.0, report_failures=True)


async def ready(base: str, session: aiohttp.ClientSession) -> bool:
    a = await proof_client(session, base).get("/readyz", timeout=5)
    return a.status == 200
