"""Processes of the system: started, waited on until healthy, stopped.

Used by the local launcher (`make run`) and by the end-to-end tests.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import json
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from common.embedded import free_port
from common.retry import retrying_sync

ROOT = Path(__file__).resolve().parent.parent
# The service-to-service credential (common/internal.py) of every process
# started from this one: made up per run, never written anywhere. An
# INTERNAL_TOKEN in the environment or a process's own env wins.
INTERNAL_TOKEN = os.environ.get("INTERNAL_TOKEN") or secrets.token_urlsafe(32)


@dataclass
class ServiceProcess:
    """`python -m <module>` with its own environment, waited on until healthy.

    `args` are extra command-line arguments; `health_path=None` skips the wait.
    """

    module: str
    env: dict[str, str]
    args: list[str] = field(default_factory=list)
    health_path: str | None = "/healthz"
    port: int = field(default_factory=free_port)
    log_path: Path | None = None
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "ServiceProcess":
        env = {"INTERNAL_TOKEN": INTERNAL_TOKEN, **os.environ, **self.env,
               "PORT": str(self.port), "HOST": "127.0.0.1"}
        env.setdefault("PYTHONPATH", str(ROOT))
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        if log is not subprocess.DEVNULL:
            log.close()  # the child holds its own descriptor
        if self.health_path:
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
                with urllib.request.urlopen(f"{self.url}{self.health_path}", timeout=1) as resp:
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

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def http_json(method: str, url: str, body: dict | None = None, token: str | None = None,
              timeout: float = 5.0):
    """(status, parsed JSON body or None) of one call with the standard library
    (the launcher and the tests that drive it use no event loop); a 4xx/5xx
    raises urllib.error.HTTPError."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else None)


def wait_ready(url: str, timeout: float = 60.0) -> None:
    """Until /readyz answers 200 (urllib raises on a 503: retried as no answer)."""

    def ready() -> int:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as resp:
            return resp.status

    policy = retrying_sync(within_s=timeout, retry_on=lambda status: status != 200, cap_s=0.5)
    try:
        status = policy(ready)
    except OSError as exc:
        status = exc
    if status != 200:
        raise RuntimeError(f"{url}/readyz did not answer 200 within {timeout:.0f} s: {status}")
