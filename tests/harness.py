"""Real processes on real ports, for end-to-end tests and the launcher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import urllib.request

from common.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ServiceProcess:
    """`python -m <module>` with its own environment, waited on until /healthz answers."""

    module: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "ServiceProcess":
        env = {**os.environ, **self.env, "PORT": str(self.port), "HOST": "127.0.0.1"}
        env.setdefault("PYTHONPATH", str(ROOT))
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                tail = ""
                if self.log_path and self.log_path.exists():
                    tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.module} exited with {self.process.returncode}\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.module} did not become healthy on {self.url}")
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


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
