"""Shared pieces of the proofs: a system of real processes on a real embedded
Redis, a client of the public API that never raises on a failed call, and
the figures every proof reports (printed at the end of the run and written to
reports/proofs.json)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from common.embedded import EmbeddedRedis, free_port
from tests.harness import ROOT, System

OPS_USER = "ops"
OPS_PASSWORD = "ops-password-for-tests"
PASSWORD = "proof-password-123"
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


# --- a client that reports instead of raising ----------------------------------
@dataclass
class Answer:
    status: int  # 0: no answer (connection refused, reset, client timeout)
    headers: Any = None
    body: Any = None
    text: str = ""
    error: str = ""
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def __repr__(self) -> str:
        return f"<{self.status} {self.error or self.text[:300]}>"


@dataclass
class Api:
    """A mobile-style client of the gateway."""

    session: aiohttp.ClientSession
    base: str
    token: str | None = None
    subject_id: str | None = None
    user_name: str | None = None
    timeout: float = 10.0
    extra: dict = field(default_factory=dict)

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        headers: dict | None = None,
        params: dict | None = None,
        data: bytes | None = None,
        token: str | None = None,
        timeout: float | None = None,
    ) -> Answer:
        h = dict(headers or {})
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        started = time.monotonic()
        try:
            async with self.session.request(
                method,
                self.base + path,
                json=json,
                data=data,
                params=params,
                headers=h,
                timeout=aiohttp.ClientTimeout(total=timeout or self.timeout),
            ) as resp:
                raw = await resp.read()
                body = None
                if raw and "json" in (resp.content_type or ""):
                    try:
                        body = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        body = None
                return Answer(
                    resp.status, resp.headers, body, raw.decode(errors="replace"),
                    elapsed=time.monotonic() - started,
                )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return Answer(0, error=f"{type(exc).__name__}: {exc}", elapsed=time.monotonic() - started)

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw):
        return self.call("POST", path, json, **kw)

    async def login(self, user_name: str, password: str = PASSWORD) -> Answer:
        a = await self.post("/v1/sessions", {"user_name": user_name, "password": password})
        if a.status == 201:
            self.token = a.body["token"]
            self.subject_id = a.body["subject_id"]
            self.user_name = user_name
        return a


def rider_signup(user_name: str) -> dict:
    return {
        "user_name": user_name,
        "password": PASSWORD,
        "first_name": "Rita",
        "last_name": "Rider",
        "email": f"{user_name}@example.com",
        "age": 30,
    }


def driver_signup(user_name: str, product: str = "standard") -> dict:
    # The last name carries the user name, so a driver document in Redis
    # can be traced back to the sign-up that made it.
    return {
        "user_name": user_name,
        "password": PASSWORD,
        "first_name": "Dan",
        "last_name": user_name,
        "email": f"{user_name}@example.com",
        "car": {"make": "Toyota", "model": "Prius", "color": "blue", "plate": "7ABC123",
                "seats": 4},
        "product": product,
    }


async def ready(base: str, session: aiohttp.ClientSession) -> bool:
    a = await Api(session, base).get("/readyz", timeout=5)
    return a.status == 200
