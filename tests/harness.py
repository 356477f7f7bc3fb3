"""Real processes on real ports, for end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deploy.processes import ROOT, ServiceProcess

__all__ = ["ROOT", "ServiceProcess", "System"]


@dataclass
class System:
    """trip_service, driver_service and the gateway as real processes on one Redis.

    `replicas` starts that many of each service (the gateway talks to the
    first of each; the others compete in the same consumer groups).
    """

    redis_url: str
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    replicas: int = 1
    trips: list[ServiceProcess] = field(default_factory=list)
    drivers: list[ServiceProcess] = field(default_factory=list)
    gateway: ServiceProcess | None = None

    def base_env(self) -> dict[str, str]:
        return {
            "REDIS_URL": self.redis_url,
            "OPS_USER_NAME": "ops",
            "OPS_PASSWORD": "ops-password-for-tests",
            "LOG_LEVEL": "INFO",
            **self.env,
        }

    def start(self) -> "System":
        env = self.base_env()
        for i in range(self.replicas):
            self.trips.append(
                ServiceProcess("trip_service", env, log_path=self.log_dir / f"trip{i}.log").start()
            )
            self.drivers.append(
                ServiceProcess("driver_service", env, log_path=self.log_dir / f"driver{i}.log").start()
            )
        gw_env = {
            **env,
            "TRIP_SERVICE_URL": self.trips[0].url,
            "DRIVER_SERVICE_URL": self.drivers[0].url,
        }
        self.gateway = ServiceProcess("gateway", gw_env, log_path=self.log_dir / "gateway.log").start()
        return self

    @property
    def url(self) -> str:
        return self.gateway.url

    def processes(self) -> list[ServiceProcess]:
        return [p for p in [self.gateway, *self.trips, *self.drivers] if p is not None]

    def stop(self) -> None:
        for proc in self.processes():
            proc.stop()
