"""The processes under test: the embedded Redis, the three services, and the
baseline processes, each a real process on its own port."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from common.scripts import load as load_functions
from common.embedded import EmbeddedRedis
from deploy.processes import ServiceProcess, wait_ready


@dataclass
class BenchSystem:
    """Redis (embedded default, AOF always), trip_service, driver_service, the
    gateway (no demo traffic), and the three baseline processes."""

    work_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    redis: EmbeddedRedis | None = None
    trips: ServiceProcess | None = None
    drivers: ServiceProcess | None = None
    gateway: ServiceProcess | None = None
    leaf_a: ServiceProcess | None = None
    leaf_b: ServiceProcess | None = None
    front: ServiceProcess | None = None
    ops_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    # Processes of the gateway, and of the baseline's front, sharing one port
    # (REUSE_PORT): bench.workers compares one and two per two cores.
    workers: int = 1
    extra: list[ServiceProcess] = field(default_factory=list)

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def start(self) -> "BenchSystem":
        self.work_dir.mkdir(parents=True, exist_ok=True)
        logs = self.work_dir / "logs"
        logs.mkdir(exist_ok=True)
        self.redis = EmbeddedRedis(self.work_dir / "redis", port=_port()).start()
        load_functions(self.redis.url)
        env = {
            "REDIS_URL": self.redis.url,
            "OPS_USER_NAME": "ops",
            "OPS_PASSWORD": self.ops_password,
            # The seed signs every account up from this one address.
            "SIGNUPS_PER_ADDR": "0",
            **self.env,
        }
        self.trips = ServiceProcess("trip_service", env, log_path=logs / "trip_service.log")
        self.drivers = ServiceProcess("driver_service", env, log_path=logs / "driver_service.log")
        self.trips.start(timeout=30)
        self.drivers.start(timeout=30)
        shared = {"REUSE_PORT": "1"} if self.workers > 1 else {}
        gateway_env = {**env, **shared, "TRIP_SERVICE_URL": self.trips.url,
                       "DRIVER_SERVICE_URL": self.drivers.url}
        self.gateway = ServiceProcess("gateway", gateway_env,
                                      log_path=logs / "gateway.log").start(timeout=30)
        base = {"REDIS_URL": self.redis.url}
        self.leaf_a = ServiceProcess("bench.baseline", base, args=["leaf"],
                                     log_path=logs / "baseline_leaf_a.log").start()
        self.leaf_b = ServiceProcess("bench.baseline", base, args=["leaf"],
                                     log_path=logs / "baseline_leaf_b.log").start()
        front_env = {**base, **shared, "LEAF_A_URL": self.leaf_a.url,
                     "LEAF_B_URL": self.leaf_b.url}
        self.front = ServiceProcess("bench.baseline", front_env, args=["front"],
                                    log_path=logs / "baseline_front.log").start()
        for i in range(1, self.workers):
            self.extra += [
                ServiceProcess("gateway", gateway_env, port=self.gateway.port,
                               log_path=logs / f"gateway-{i}.log").start(timeout=30),
                ServiceProcess("bench.baseline", front_env, args=["front"], port=self.front.port,
                               log_path=logs / f"baseline_front-{i}.log").start(),
            ]
        wait_ready(self.gateway.url)
        return self

    def services(self) -> dict[str, ServiceProcess]:
        extra = {f"gateway-{i}": p for i, p in enumerate(self.extra[0::2], 1)}
        return {"gateway": self.gateway, **extra, "trip_service": self.trips,
                "driver_service": self.drivers}

    def baselines(self) -> dict[str, ServiceProcess]:
        extra = {f"baseline_front-{i}": p for i, p in enumerate(self.extra[1::2], 1)}
        return {"baseline_front": self.front, **extra, "baseline_leaf_a": self.leaf_a,
                "baseline_leaf_b": self.leaf_b}

    def stop(self) -> None:
        for proc in (*self.extra, self.front, self.leaf_a, self.leaf_b, self.gateway,
                     self.drivers, self.trips):
            if proc is not None:
                proc.stop()
        if self.redis is not None:
            self.redis.stop()


def _port() -> int:
    from common.embedded import free_port

    return free_port()


def log_tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else ""


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false", "no")
