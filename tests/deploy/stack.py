"""docker compose on a real Docker engine, for tests/deploy.

A `Stack` is a clean copy of the tree (the files git knows, no `.env`, no
generated credentials) run under a project name, image names and ports of its
own, so that it never touches another checkout's containers, volumes or
images, and removes all of them at the end.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from common.embedded import free_port
from tests.harness import ROOT

# Where CI finds the script that starts the engine (.ci/run runs it).
ENGINE_SCRIPT = ROOT.parent / "shared" / "tools" / "container-engine"
# Variables of the user's shell that would change what the stack does.
OWN_VARIABLES = ("COMPOSE_", "RIDEHAIL_", "GATEWAY_PORT", "LOCUST_PORT", "DOCKER_BUILDKIT")


def engine_problem() -> str | None:
    """Why no engine can run the stack, or None."""
    if shutil.which("docker") is None:
        return "no docker command"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                          capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        return f"the Docker engine does not answer: {info.stderr.strip()[:300]}"
    compose = subprocess.run(["docker", "compose", "version", "--short"],
                             capture_output=True, text=True, timeout=60)
    if compose.returncode != 0:
        return f"no Compose v2 plugin: {compose.stderr.strip()[:300]}"
    return None


def copy_tree(target: Path) -> None:
    """The files of the repository as a fresh clone has them: tracked and
    not-ignored ones, never .env, .venv or generated credentials."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if not source.is_file():  # deleted in the work tree
            continue
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)


@dataclass
class Stack:
    root: Path
    project: str = field(default_factory=lambda: f"rhtest{secrets.token_hex(3)}")
    gateway_port: int = field(default_factory=free_port)
    locust_port: int = field(default_factory=free_port)
    figures: dict[str, str] = field(default_factory=dict)
    # Of the first `up --build` (tests/deploy/conftest.py).
    up_output: subprocess.CompletedProcess | None = None
    dangling_before: set[str] = field(default_factory=set)
    dangling_after: set[str] = field(default_factory=set)

    @property
    def image(self) -> str:
        return f"{self.project}:test"

    @property
    def locust_image(self) -> str:
        return f"{self.project}-locust:test"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(OWN_VARIABLES)}
        env.update(
            COMPOSE_PROJECT_NAME=self.project,
            RIDEHAIL_IMAGE=self.image,
            RIDEHAIL_LOCUST_IMAGE=self.locust_image,
            GATEWAY_PORT=str(self.gateway_port),
            LOCUST_PORT=str(self.locust_port),
            # Every request from this host comes from the Docker bridge's one
            # address, and the crash test signs riders up as fast as it can.
            SIGNUPS_PER_ADDR="0",
        )
        return env

    def run(self, *args: str, timeout: float = 300, check: bool = True,
            env: dict | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(list(args), cwd=self.root, env={**self.env(), **(env or {})},
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result

    def compose(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run("docker", "compose", *args, **kw)

    def timed(self, figure: str, *args: str, **kw) -> subprocess.CompletedProcess:
        started = time.monotonic()
        result = self.compose(*args, **kw)
        self.figures[figure] = f"{time.monotonic() - started:.1f} s"
        return result

    def container(self, service: str) -> str:
        cid = self.compose("ps", "-q", service).stdout.strip()
        assert cid, f"no container of {service}"
        return cid.splitlines()[0]

    def inspect(self, what: str) -> dict:
        return json.loads(self.run("docker", "inspect", what).stdout)[0]

    def logs(self, *services: str) -> str:
        return self.compose("logs", "--no-color", *services, check=False).stdout

    def ops_account(self) -> tuple[str, str]:
        shown = self.compose("run", "--rm", "-T", "init", "show").stdout
        fields = dict(line.split(":", 1) for line in shown.splitlines() if ":" in line)
        return fields["user name"].strip(), fields["password"].strip()

    def images_of_project(self, dangling: bool) -> set[str]:
        """Image ids compose built for this project (it labels them)."""
        args = ["docker", "images", "-q", "--no-trunc",
                "--filter", f"label=com.docker.compose.project={self.project}"]
        if dangling:
            args += ["--filter", "dangling=true"]
        return set(self.run(*args).stdout.split())

    def remove_everything(self) -> None:
        """Containers, networks, volumes and images of this project."""
        # Not `--rmi all`: that would remove redis:8 and postgres:16 too.
        self.compose("--profile", "load", "down", "--volumes", "--remove-orphans",
                     "--timeout", "5", check=False, timeout=180)
        leftovers = self.images_of_project(dangling=False)
        if leftovers:
            self.run("docker", "rmi", "-f", *leftovers, check=False)
