"""A local Redis Cluster of embedded servers (common.embedded): `masters`
shards of one primary and `replicas` replicas each, for the replicated
topology (`REDIS_TOPOLOGY=replicated`), the failover proofs and the
benchmarks. Each node is an EmbeddedRedis with the cluster settings below."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import redis as redis_sync

from common.embedded import EmbeddedRedis, EmbeddedRedisError, free_port


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
