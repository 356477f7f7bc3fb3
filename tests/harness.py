"""Real processes on real ports, for end-to-end tests."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from common import acl
from common.embedded import free_port
from common.scripts import load as load_functions
from deploy.processes import ROOT, ServiceProcess

__all__ = ["ROOT", "RoundRobin", "ServiceProcess", "System"]


class RoundRobin:
    """A TCP load balancer in front of a service's replicas, as a Kubernetes
    Service or a cloud load balancer is in a real deployment: each new
    connection goes to the next replica (one that refuses a connection is
    skipped), and the bytes flow through unchanged. The gateway keeps one
    URL per upstream and its pooled connections spread over the replicas."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = list(backends)
        self.port = free_port()
        self.connections: Counter[int] = Counter()  # by backend port
        self._next = itertools.cycle(range(len(self.backends)))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=f"round-robin-{self.port}")
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "RoundRobin":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
        return self

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _connect(self):
        for _ in range(len(self.backends)):
            host, port = self.backends[next(self._next)]
            try:
                reader, writer = await asyncio.open_connection(host, port)
            except OSError:
                continue
            self.connections[port] += 1
            return reader, writer
        return None

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        upstream = await self._connect()
        if upstream is None:
            client_w.close()
            return
        up_r, up_w = upstream
        pipes = [asyncio.ensure_future(self._pipe(client_r, up_w)),
                 asyncio.ensure_future(self._pipe(up_r, client_w))]
        self._pipes.update(pipes)
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pipes:
                task.cancel()
                self._pipes.discard(task)
            for w in (client_w, up_w):
                w.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    def stop(self) -> None:
        if not self._thread.is_alive():
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._pipes):
                task.cancel()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@dataclass
class System:
    """trip_service, driver_service and the gateway as real processes on one
    Redis (a standalone server or a cluster).

    `redis_url` is an admin's: the system creates an ACL user per service
    (common.acl) with fresh passwords, and each process connects as its own
    user. `replicas` starts that many of each service; with more than one,
    the gateway reaches each service through a round-robin balancer, and the
    replicas compete in the same consumer groups. `gateway_replicas` does
    the same for the gateway: clients then call the balancer (`url`), and
    `gateway` is the first replica.
    """

    redis_url: str
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    replicas: int = 1
    acl: bool = True
    gateway_replicas: int = 1
    trips: list[ServiceProcess] = field(default_factory=list)
    drivers: list[ServiceProcess] = field(default_factory=list)
    gateways: list[ServiceProcess] = field(default_factory=list)
    balancers: dict[str, RoundRobin] = field(default_factory=dict)
    redis_urls: dict[str, str] = field(default_factory=dict)

    def base_env(self) -> dict[str, str]:
        """What every process shares (without REDIS_URL: see service_env)."""
        return {
            "OPS_USER_NAME": "ops",
            "OPS_PASSWORD": "ops-password-for-tests",
            "LOG_LEVEL": "INFO",
            # The tests sign up many accounts from this one address; the
            # per-address bound has tests of its own (tests/security).
            "SIGNUPS_PER_ADDR": "0",
            **self.env,
        }

    def service_env(self, service: str) -> dict[str, str]:
        """The environment of one process: its own Redis user, and for the
        gateway the services' URLs."""
        env = {**self.base_env(), "REDIS_URL": self.redis_urls.get(service, self.redis_url)}
        if service == "gateway":
            env["TRIP_SERVICE_URL"] = self.trip_service_url
            env["DRIVER_SERVICE_URL"] = self.driver_service_url
        return env

    @property
    def trip_service_url(self) -> str:
        return self.balancers["trip_service"].url if "trip_service" in self.balancers \
            else self.trips[0].url

    @property
    def driver_service_url(self) -> str:
        return self.balancers["driver_service"].url if "driver_service" in self.balancers \
            else self.drivers[0].url

    def start(self) -> "System":
        # The admin's part: the functions (common/scripts.py) and the users.
        load_functions(self.redis_url)
        if self.acl and not self.redis_urls:
            self.redis_urls = acl.install_users(self.redis_url, acl.new_passwords())
        for i in range(self.replicas):
            self.trips.append(ServiceProcess(
                "trip_service", self.service_env("trip_service"),
                log_path=self.log_dir / f"trip{i}.log").start())
            self.drivers.append(ServiceProcess(
                "driver_service", self.service_env("driver_service"),
                log_path=self.log_dir / f"driver{i}.log").start())
        if self.replicas > 1:
            for name, procs in (("trip_service", self.trips), ("driver_service", self.drivers)):
                self.balancers[name] = RoundRobin([("127.0.0.1", p.port) for p in procs]).start()
        for i in range(self.gateway_replicas):
            log = self.log_dir / ("gateway.log" if i == 0 else f"gateway{i}.log")
            # Each gateway's operations listener: /metrics and /readyz in full.
            env = {**self.service_env("gateway"), "OPS_PORT": str(free_port())}
            self.gateways.append(ServiceProcess("gateway", env, log_path=log).start())
        if self.gateway_replicas > 1:
            self.balancers["gateway"] = RoundRobin(
                [("127.0.0.1", p.port) for p in self.gateways]
            ).start()
        return self

    @property
    def gateway(self) -> ServiceProcess | None:
        return self.gateways[0] if self.gateways else None

    @property
    def url(self) -> str:
        if "gateway" in self.balancers:
            return self.balancers["gateway"].url
        return self.gateway.url

    @property
    def ops_url(self) -> str:
        """The first gateway's operations listener (OPS_PORT): /metrics and
        /readyz with every check, no login."""
        return f"http://127.0.0.1:{self.gateway.env['OPS_PORT']}"

    def processes(self) -> list[ServiceProcess]:
        return [*self.gateways, *self.trips, *self.drivers]

    def stop(self) -> None:
        for proc in self.processes():
            proc.stop()
        for balancer in self.balancers.values():
            balancer.stop()
