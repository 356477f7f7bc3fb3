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

Settings (environment): REDIS_URL, REDIS_TOPOLOGY (single | cluster |
replicated, embedded only; deploy/topology.py), REDIS_PORT (embedded single
server, default 6379),
GATEWAY_PORT (8080), TRIP_SERVICE_PORT (8081), DRIVER_SERVICE_PORT (8082),
DATA_DIR (.data), DEMO_TRAFFIC (1), REDIS_MAXMEMORY (256mb, noeviction; 0 for none),
DATABASE_URL (trip_service's cold store; else an embedded PostgreSQL on POSTGRES_PORT,
default 5432, data in DATA_DIR/postgres), HOT_RETENTION_S (3600 for the demo),
STATUS_EVERY_S (5), OPS_USER_NAME, OPS_PASSWORD (made up when unset), INTERNAL_TOKEN
(made up when unset), and everything the services read.

On the embedded server each process connects as its own ACL user
(common.acl, docs/security.md), with passwords made up for this run; the
admin's (the default user's) is written to DATA_DIR/redis/admin.password.
A REDIS_URL given is used as it is by every process.

`REDIS_TOPOLOGY=replicated` starts Redis Cluster of three shards, each a
primary with two replicas (AOF always, node timeout 1 s), runs the services
with WAIT_REPLICAS=1 (unless set), prints each node, and supervises the
nodes: one that dies is started again on its own data and rejoins as a
replica of its shard's primary (deploy/topology.py). `python -m deploy.chaos`
fails a primary on purpose. `cluster` is the same without replicas.
"""

from __future__ import annotations

import os
import secrets
import shutil
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
from common.embedded_cluster import EmbeddedCluster
from common.embedded_pg import EmbeddedPostgres, EmbeddedPostgresError
from common.redisconn import redact
from common.regions import parse_regions
from common.scripts import load as load_functions
from deploy.processes import ROOT, ServiceProcess, http_json, wait_ready
from deploy.topology import (
    Supervisor,
    TopologyError,
    describe_nodes,
    node_shards,
    read_topology,
    remove_state,
    state_path,
    write_state,
)


DEMO_HOT_RETENTION_S = "3600"


def say(message: str) -> None:
    print(f"[run] {message}", flush=True)


class PortTaken(RuntimeError):
    """A port the user chose is in use: the launcher stops rather than move it."""


def port_free(port: int) -> bool:
    """Whether a server could listen on `port` now. SO_REUSEADDR, as aiohttp and
    Redis bind: the TIME-WAIT sockets an earlier run left do not hold a port."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def port_holder(port: int) -> str:
    """Who listens on `port`, as far as this user may see ("" when unknown)."""
    try:
        import psutil
    except ImportError:
        return ""
    try:
        for conn in psutil.net_connections("tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
                if conn.pid is None:
                    return ""
                cmd = " ".join(psutil.Process(conn.pid).cmdline())[:80]
                return f" by pid {conn.pid} ({cmd})"
    except (psutil.Error, OSError):
        return ""
    return ""


def choose_port(name: str, default: int) -> int:
    """The port in `name` when set (used as it is, or the launcher stops and says
    what holds it); else `default`, or any free port when the default is busy."""
    given = os.environ.get(name, "").strip()
    wanted = int(given) if given else default
    if port_free(wanted):
        return wanted
    if given:
        raise PortTaken(
            f"{name}={wanted} is in use{port_holder(wanted)}: stop what holds it, "
            f"or set {name} to another port"
        )
    port = free_port()
    say(f"port {wanted} is busy; using {port} instead (set {name} to choose)")
    return port


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


def start_postgres(data_dir: Path) -> tuple[EmbeddedPostgres | None, str]:
    """trip_service's cold store: DATABASE_URL as given, else an embedded
    PostgreSQL 16 (pgserver) with its data in DATA_DIR/postgres. Returns the
    server this run started (or None) and the DATABASE_URL for trip_service."""
    url = os.environ.get("DATABASE_URL")
    if url:
        say("using the PostgreSQL named by DATABASE_URL for trip_service's cold store")
        return None, url
    port = choose_port("POSTGRES_PORT", 5432)
    say(f"starting embedded PostgreSQL on port {port} (trip_service's cold store) ...")
    # PostgreSQL runs as `nobody` under root: the folder above its data must
    # be searchable (the data folder itself is the server's alone, 0700).
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        data_dir.chmod(data_dir.stat().st_mode | 0o001)
    server = EmbeddedPostgres(data_dir / "postgres", port).start()
    say(f"  PostgreSQL ready, data in {server.data_dir}; credentials in {server.credentials_file}")
    return server, server.url


def start_cluster(topology: str, data_dir: Path, fsync: str) -> tuple[EmbeddedCluster, Path]:
    """The embedded cluster of REDIS_TOPOLOGY, new for this run (its nodes
    take free ports, which a previous run's nodes.conf would not know)."""
    replicas = 2 if topology == "replicated" else 0
    folder = data_dir / f"redis-{topology}"
    if folder.exists():
        say(f"removing the previous run's cluster data in {folder}")
        shutil.rmtree(folder)
    shape = "each a primary with 2 replicas" if replicas else "primaries only"
    say(f"starting embedded Redis Cluster: 3 shards, {shape} (AOF appendfsync {fsync}, "
        "node timeout 1 s) ...")
    cluster = EmbeddedCluster(
        folder, masters=3, replicas=replicas, appendfsync=fsync,
        admin_password=secrets.token_urlsafe(24),
    )
    try:
        cluster.start(timeout=90)
    except BaseException:
        cluster.stop()
        raise
    admin_file = folder / "admin.password"
    write_private(admin_file, cluster.admin_password + "\n")
    return cluster, admin_file


def main() -> int:
    # AOF (password hashes, e-mails), users.acl and logs: this user's alone.
    os.umask(0o077)
    data_dir = private_dir(Path(os.environ.get("DATA_DIR", ROOT / ".data")))
    log_dir = private_dir(data_dir / "logs")
    started: list = []
    redis_server = None
    pg_server = None
    cluster = None
    supervisor = None
    state_file = state_path(data_dir)
    stopping = {"now": False}

    def on_signal(signum, frame):
        stopping["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    try:
        redis_url = os.environ.get("REDIS_URL")
        topology = read_topology(os.environ)
        service_env: dict[str, str] = {}
        if redis_url:
            say(f"using Redis at {redact(redis_url)} for every process, as given")
            if topology != "single":
                say(f"  (REDIS_TOPOLOGY={topology} applies to the embedded Redis only)")
            redis_urls = {service: redis_url for service in acl.SERVICES}
        elif topology != "single":
            fsync = os.environ.get("DURABILITY", "always")
            cluster, admin_file = start_cluster(topology, data_dir, fsync)
            # The admin's part: the functions the services call (on every
            # primary; replicas get them by replication), and their users.
            load_functions(cluster.url)
            redis_urls = acl.install_users(cluster.url, acl.new_passwords())
            say(f"  Redis Cluster ready, data in {cluster.data_dir}; its nodes:")
            regions = [r.name for r in parse_regions(os.environ.get("REGIONS"))]
            for line in describe_nodes(cluster, regions):
                say(line)
            say(f"  the admin is user default, its password in {admin_file}")
            write_state(state_file, topology, cluster, admin_file, node_shards(cluster))
            supervisor = Supervisor(cluster)
            if topology == "replicated":
                # An acknowledged write is on a replica too (WAIT 1 + WAITAOF).
                service_env["WAIT_REPLICAS"] = os.environ.get("WAIT_REPLICAS") or "1"
                say(f"  the services wait for {service_env['WAIT_REPLICAS']} replica(s) "
                    "per write (WAIT_REPLICAS); a node that dies is restarted here")
        else:
            port = choose_port("REDIS_PORT", 6379)
            fsync = os.environ.get("DURABILITY", "always")
            say(f"starting embedded Redis with JSON on port {port} (AOF appendfsync {fsync}) ...")
            # The admin (default user) and each service's ACL user get fresh
            # passwords every run; the services never use the admin.
            admin_password = secrets.token_urlsafe(24)
            maxmemory = os.environ.get("REDIS_MAXMEMORY", "256mb")
            say(f"  maxmemory {maxmemory} with noeviction: a full Redis answers 503, drops nothing")
            redis_server = EmbeddedRedis(
                data_dir / "redis", port, appendfsync=fsync, admin_password=admin_password,
                maxmemory=maxmemory if maxmemory not in ("0", "") else None,
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
        env = {
            "INTERNAL_TOKEN": os.environ.get("INTERNAL_TOKEN") or secrets.token_urlsafe(32),
            **service_env,
        }
        gateway_env = {
            **env, "OPS_USER_NAME": ops_user, "OPS_PASSWORD": ops_password,
            # The simulated city signs every rider and driver up from this host.
            "SIGNUPS_PER_ADDR": os.environ.get("SIGNUPS_PER_ADDR", "0"),
        }

        pg_server, database_url = start_postgres(data_dir)
        trip = ServiceProcess(
            "trip_service",
            {**env, "REDIS_URL": redis_urls["trip_service"], "DATABASE_URL": database_url,
             # The demo city finishes ~1 trip/s at ~8 KB each while hot: a day of
             # them would not fit the demo's REDIS_MAXMEMORY; an hour does.
             "HOT_RETENTION_S": os.environ.get("HOT_RETENTION_S", DEMO_HOT_RETENTION_S)},
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
            # Listed before the wait: one that never becomes healthy is stopped too.
            started.append(proc)
            proc.start(timeout=60)
        gateway = ServiceProcess(
            "gateway",
            {**gateway_env, "REDIS_URL": redis_urls["gateway"], "TRIP_SERVICE_URL": trip.url,
             "DRIVER_SERVICE_URL": driver.url},
            port=choose_port("GATEWAY_PORT", 8080),
            log_path=log_dir / "gateway.log",
        )
        say(f"starting gateway on {gateway.url} ...")
        started.append(gateway)
        gateway.start(timeout=60)
        wait_ready(gateway.url)
        say("  gateway ready (/readyz 200)")

        _, session = http_json(
            "POST", f"{gateway.url}/v1/sessions", {"user_name": ops_user, "password": ops_password}
        )
        token = session["token"]

        if os.environ.get("DEMO_TRAFFIC", "1") != "0":
            say("starting the simulated city ...")
            city = ServiceProcess(
                "deploy.sim", {}, args=["--gateway", gateway.url], health_path=None,
                log_path=log_dir / "city.log",
            )
            started.append(city)
            city.start()
        else:
            say("DEMO_TRAFFIC=0: no simulated riders and drivers")

        credentials = data_dir / "ops-credentials"
        write_private(credentials, (
            f"OPS_USER_NAME={ops_user}\nOPS_PASSWORD={ops_password}\n"
            f"DASHBOARD_URL={gateway.url}/#token={token}\n"
        ))
        print(flush=True)
        say(f"dashboard:  {gateway.url}/  (logged-in link and ops login in {credentials})")
        say(f"API:        {gateway.url}/docs (explorer of /openapi.json)")
        say(f"logs:       {log_dir}")
        say("Ctrl-C stops everything.")
        print(flush=True)

        every = float(os.environ.get("STATUS_EVERY_S", "5"))
        next_status = time.monotonic() + every
        while not stopping["now"]:
            if supervisor is not None:
                events = supervisor.tick()
                for line in events:
                    say(line)
                if events:
                    write_state(state_file, topology, cluster, admin_file, node_shards(cluster))
            for proc in started:
                if not proc.running:
                    say(f"{proc.module} exited with {proc.process.returncode}; see {proc.log_path}")
                    stopping["now"] = True
            if time.monotonic() >= next_status:
                next_status += every
                line = status_line(gateway.url, token)
                if cluster is not None:
                    up = sum(n.alive() for n in cluster.nodes)
                    line += f" | redis nodes up={up}/{len(cluster.nodes)}"
                    line += f" restarts={supervisor.restarts}"
                say(line)
            time.sleep(0.2)
        return 0
    except (EmbeddedRedisError, EmbeddedPostgresError, RuntimeError, urllib.error.URLError,
            RedisError, TopologyError) as exc:
        say(f"cannot start: {exc}")
        return 1
    finally:
        say("stopping ...")
        for proc in reversed(started):
            proc.stop()
        if pg_server is not None:
            pg_server.stop()
        if redis_server is not None:
            redis_server.stop()
        if cluster is not None:
            remove_state(state_file)
            cluster.stop()
        say("stopped.")


if __name__ == "__main__":
    sys.exit(main())
