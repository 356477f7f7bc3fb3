"""The commands and environment of docker-compose.yml, run outside a container.

tests/deploy runs the compose file on a real Docker engine; this is the same
proof without one, in seconds: the credentials of `python -m
deploy.credentials init`, each service's own command with its environment
and its credentials file (the container network's host names mapped to this
machine) start and answer /readyz, and the city's command drives traffic
through the gateway.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import redis as redis_sync

from common import acl
from common.embedded import EmbeddedRedis, free_port
from common.scripts import load as load_functions
from deploy import credentials
from deploy.processes import ServiceProcess
from tests.helpers.demo import http_json
from tests.demo.deployfiles import SERVICES, compose, module_of, service_env
from tests.harness import ROOT


def wait_ready(url: str, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            status, body = http_json("GET", f"{url}/readyz")
            if status == 200:
                return body
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url}/readyz never answered 200 ({last!r})")


def test_compose_services_start_with_their_commands_and_become_ready(tmp_path, postgres_server):
    services = compose()["services"]
    # The credentials the init service writes, for this machine's Redis; the
    # server loads their ACL file the way the redis service does (--aclfile).
    assert "--aclfile" in services["redis"]["command"]
    port = free_port()
    state, created = credentials.init(tmp_path / "credentials", f"redis://127.0.0.1:{port}/0",
                                      "postgresql://127.0.0.1:5432/ridehail")
    assert created
    (tmp_path / "redis").mkdir()
    shutil.copy(tmp_path / "credentials" / "redis" / "users.acl", tmp_path / "redis")
    redis = EmbeddedRedis(tmp_path / "redis", port,
                          admin_password=state["redis_admin_password"]).start()
    # What compose's redis-functions service does: the admin loads the functions.
    load_functions(redis.url)
    ports = {module: free_port() for module in SERVICES}
    # Container names -> this machine: Redis and the services on their local ports.
    hosts = {"@redis:6379/": f"@127.0.0.1:{redis.port}/"}
    for module in SERVICES:
        port = service_env(services[module])["PORT"]
        hosts[f"http://{module}:{port}"] = f"http://127.0.0.1:{ports[module]}"

    def credentials_of(module: str) -> dict[str, str]:
        path = service_env(services[module])["CREDENTIALS_FILE"]
        text = (tmp_path / "credentials" / path.rsplit("/", 1)[1]).read_text()
        return {k: v.strip("'") for k, v in (line.split("=", 1) for line in text.splitlines())}

    started: list[ServiceProcess] = []

    def localize(value: str) -> str:
        for container, local in hosts.items():
            value = value.replace(container, local)
        return value

    try:
        for module in ("trip_service", "driver_service", "gateway"):
            service = services[module]
            command = service["command"]
            env = {k: localize(v) for k, v in service_env(service).items()}
            env.pop("CREDENTIALS_FILE")  # what the image's entrypoint does with it:
            env.update(credentials_of(module))
            if "DATABASE_URL" in env:
                # compose's postgres service, here the tests' embedded PostgreSQL.
                env["DATABASE_URL"] = postgres_server.url
            # PORT is the container's; ServiceProcess sets this machine's.
            proc = ServiceProcess(
                module_of(command), env, args=command[3:], port=ports[module],
                log_path=tmp_path / f"{module}.log",
            )
            started.append(proc.start(timeout=60))
        for proc in started:
            body = wait_ready(proc.url)
            assert body["status"] == "ready"
            assert acl.USERS[proc.module].name in proc.env["REDIS_URL"]
        gateway = started[-1].url
        assert wait_ready(gateway) == {"status": "ready"}  # the checks are for the ops role
        # The ops account from OPS_USER_NAME / OPS_PASSWORD, which sees the checks.
        status, body = http_json("POST", f"{gateway}/v1/sessions",
                                 {"user_name": state["ops_user_name"],
                                  "password": state["ops_password"]})
        assert status == 201 and body["role"] == "ops"
        _, ready = http_json("GET", f"{gateway}/readyz", token=body["token"])
        assert set(ready["checks"]) >= {"redis", "trip_service", "driver_service", "functions"}

        city = services["city"]
        command = [localize(part) for part in city["command"]]
        command[command.index("--gateway") + 1] = gateway
        env = {**service_env(city), "CITY_LOG_EVERY_S": "5"}
        result = subprocess.run(
            [sys.executable, *command[1:], "--duration", "15"],
            cwd=ROOT, env={**os.environ, **env},
            capture_output=True, text=True, timeout=90,
        )
        log = result.stderr
        assert result.returncode == 0, log[-3000:]
        assert "Traceback" not in log, log[-3000:]
        m = re.findall(r"drivers (\d+) \(online (\d+)", log)
        assert m and int(m[-1][0]) == int(env["CITY_DRIVERS"]), log[-3000:]
        assert int(m[-1][1]) > 0, log[-3000:]
        admin = redis_sync.Redis.from_url(redis.url, decode_responses=True)
        denials = admin.execute_command("ACL", "LOG")
        admin.close()
        assert denials == [], f"denied by the compose ACL users: {denials}"
    finally:
        for proc in reversed(started):
            proc.stop()
        redis.stop()
