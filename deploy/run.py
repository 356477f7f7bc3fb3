"""`make run`: the whole system on one machine, on the embedded default.

Starts Redis with JSON (unless REDIS_URL names one), trip_service,
driver_service, the gateway and, unless DEMO_TRAFFIC=0, the simulated city;
prints the dashboard link and a status line every few seconds. Ctrl-C stops
everything it started, Redis last.

Secrets stay put: DATA_DIR is 0700; the ops account (a made-up name and
password unless OPS_USER_NAME / OPS_PASSWORD are given) goes to the gateway
alone, and with the logged-in dashboard link to DATA_DIR/ops-credentials
(0600), whose path is printed, never the password or the token. The
services' shared secret INTERNAL_TOKEN is made up per run.

Settings (environment): REDIS_URL, REDIS_PORT (embedded, default 6379),
GATEWAY_PORT (8080), TRIP_SERVICE_PORT (8081), DRIVER_SERVICE_PORT (8082),
DATA_DIR (.data), DEMO_TRAFFIC (1), STATUS_EVERY_S (5), OPS_USER_NAME,
OPS_PASSWORD (made up when unset), INTERNAL_TOKEN (made up when unset), and
everything the services read.

On the embedded server each process connects as its own ACL user
(common.acl, docs/security.md), with passwords made up for this run; the
admin's (the default user's) is written to DATA_DIR/redis/admin.password.
A REDIS_URL given is used as it is by every process.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from redis.exceptions import RedisError

from common import acl
from common.embedded import EmbeddedRedis, EmbeddedRedisError, free_port
from common.redisconn import redact
from common.scripts import load as load_functions
from deploy.processes import ROOT, ServiceProcess


def say(message: str) -> None:
    print(f"[run] {message}", flush=True)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def choose_port(name: str, default: int) -> int:
    wanted = int(os.environ.get(name, default))
    if port_free(wanted):
        return wanted
    port = free_port()
    say(f"port {wanted} is busy; using {port} instead (set {name} to choose)")
    return port


def http_json(method: str, url: str, body: dict | None = None, token: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=5) as resp:
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else None)


def wait_ready(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _ = http_json("GET", f"{url}/readyz")
            if status == 200:
                return
        except (urllib.error.URLError, OSError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}/readyz did not answer 200 within {timeout:.0f}s")
        time.sleep(0.2)


def status_line(gateway: str, token: str) -> str:
    try:
        _, overview = http_json("GET", f"{gateway}/v1/ops/overview", token=token)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return f"overview unavailable: {exc}"
    by_status = overview.get("trips_by_status") or {}
    trips = " ".join(f"{k}={v}" for k, v in sorted(by_status.items()) if v)
    groups = overview.get("consumer_groups") or []
    lag = sum((g.get("lag") or 0) for g in groups)
    pending = sum((g.get("pending") or 0) for g in groups)
    eps = overview.get("events_per_s")
    online = (overview.get("drivers") or {}).get("locations_total")
    parts = [f"trips: {trips or 'none yet'}"]
    if eps is not None:
        parts.append(f"events/s={eps:.1f}")
    if online is not None:
        parts.append(f"drivers online={online}")
    parts.append(f"lag={lag} pending={pending}")
    dead = overview.get("dead_letters")
    if dead:
        parts.append(f"dead letters={dead}")
    return " | ".join(parts)


def private_dir(path: Path) -> Path:
    """A folder only this user may enter (an existing one is tightened)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """A file only this user may read, created so from the start."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as f:
        f.write(text)


def main() -> int:
    # AOF (password hashes, e-mails), users.acl and logs: this user's alone.
    os.umask(0o077)
    data_dir = private_dir(Path(os.environ.get("DATA_DIR", ROOT / ".data")))
    log_dir = private_dir(data_dir / "logs")
    started: list = []
    redis_server = None
    stopping = {"now": False}

    def on_signal(signum, frame):
        stopping["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    try:
        redis_url = os.environ.get("REDIS_URL")
        if redis_url:
            say(f"using Redis at {redact(redis_url)} for every process, as given")
            redis_urls = {service: redis_url for service in acl.SERVICES}
        else:
            port = choose_port("REDIS_PORT", 6379)
            fsync = os.environ.get("DURABILITY", "always")
            say(f"starting embedded Redis with JSON on port {port} (AOF appendfsync {fsync}) ...")
            # The admin (default user) and each service's ACL user get fresh
            # passwords every run; the services never use the admin.
            admin_password = secrets.token_urlsafe(24)
            redis_server = EmbeddedRedis(
                data_dir / "redis", port, appendfsync=fsync, admin_password=admin_password
            ).start()
            admin_file = redis_server.data_dir / "admin.password"
            write_private(admin_file, admin_password + "\n")
            # The admin's part: the functions the services call, and their users.
            load_functions(redis_server.url)
            redis_urls = acl.install_users(redis_server.url, acl.new_passwords())
            say(f"  Redis ready, data in {redis_server.data_dir}")
            users = ", ".join(u.name for u in acl.USERS.values())
            say(f"  each service connects as its own ACL user ({users});")
            say(f"  the admin is user default, its password in {admin_file}")

        # No guessable default: a made-up name and password unless given.
        # Taken out of the environment every child inherits: the gateway alone gets them.
        ops_user = os.environ.pop("OPS_USER_NAME", "") or f"ops-{secrets.token_hex(4)}"
        ops_password = os.environ.pop("OPS_PASSWORD", "") or secrets.token_urlsafe(24)
        # Only the gateway gets the ops account; every process the shared
        # secret of the service-to-service calls.
        env = {"INTERNAL_TOKEN": os.environ.get("INTERNAL_TOKEN") or secrets.token_urlsafe(32)}
        gateway_env = {
            **env, "OPS_USER_NAME": ops_user, "OPS_PASSWORD": ops_password,
            # The simulated city signs every rider and driver up from this host.
            "SIGNUPS_PER_ADDR": os.environ.get("SIGNUPS_PER_ADDR", "0"),
        }

        trip = ServiceProcess(
            "trip_service", {**env, "REDIS_URL": redis_urls["trip_service"]},
            port=choose_port("TRIP_SERVICE_PORT", 8081),
            log_path=log_dir / "trip_service.log",
        )
        driver = ServiceProcess(
            "driver_service", {**env, "REDIS_URL": redis_urls["driver_service"]},
            port=choose_port("DRIVER_SERVICE_PORT", 8082),
            log_path=log_dir / "driver_service.log",
        )
        for proc in (trip, driver):
            say(f"starting {proc.module} on {proc.url} ...")
            started.append(proc.start(timeout=60))
        gateway = ServiceProcess(
            "gateway",
            {**gateway_env, "REDIS_URL": redis_urls["gateway"], "TRIP_SERVICE_URL": trip.url,
             "DRIVER_SERVICE_URL": driver.url},
            port=choose_port("GATEWAY_PORT", 8080),
            log_path=log_dir / "gateway.log",
        )
        say(f"starting gateway on {gateway.url} ...")
        started.append(gateway.start(timeout=60))
        wait_ready(gateway.url)
        say("  gateway ready (/readyz 200)")

        _, session = http_json(
            "POST", f"{gateway.url}/v1/sessions", {"user_name": ops_user, "password": ops_password}
        )
        token = session["token"]

        if os.environ.get("DEMO_TRAFFIC", "1") != "0":
            say("starting the simulated city ...")
            city = ServiceProcess(
                "deploy.city", {}, args=["--gateway", gateway.url], health_path=None,
                log_path=log_dir / "city.log",
            )
            started.append(city.start())
        else:
            say("DEMO_TRAFFIC=0: no simulated riders and drivers")

        credentials = data_dir / "ops-credentials"
        write_private(credentials, (
            f"OPS_USER_NAME={ops_user}\nOPS_PASSWORD={ops_password}\n"
            f"DASHBOARD_URL={gateway.url}/#token={token}\n"
        ))
        print(flush=True)
        say(f"dashboard:  {gateway.url}/  (logged-in link and ops login in {credentials})")
        say(f"API:        {gateway.url}/openapi.json")
        say(f"logs:       {log_dir}")
        say("Ctrl-C stops everything.")
        print(flush=True)

        every = float(os.environ.get("STATUS_EVERY_S", "5"))
        next_status = time.monotonic() + every
        while not stopping["now"]:
            for proc in started:
                if not proc.running:
                    say(f"{proc.module} exited with {proc.process.returncode}; see {proc.log_path}")
                    stopping["now"] = True
            if time.monotonic() >= next_status:
                next_status += every
                say(status_line(gateway.url, token))
            time.sleep(0.2)
        return 0
    except (EmbeddedRedisError, RuntimeError, urllib.error.URLError, RedisError) as exc:
        say(f"cannot start: {exc}")
        return 1
    finally:
        say("stopping ...")
        for proc in reversed(started):
            proc.stop()
        if redis_server is not None:
            redis_server.stop()
        say("stopped.")


if __name__ == "__main__":
    sys.exit(main())
