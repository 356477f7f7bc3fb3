"""The embedded Redis topologies of `make run`, the record of the nodes it
started, and the supervisor that restarts a node that dies.

`REDIS_TOPOLOGY` (read by deploy/run.py):
- `single` (the default): one server.
- `cluster`: Redis Cluster of three primaries, no replicas.
- `replicated`: Redis Cluster of three shards, each a primary with two
  replicas; the services run with `WAIT_REPLICAS=1`.

The launcher records the nodes it started in a state file (owner only, 0600)
under DATA_DIR: its own pid, and each node's port, pid and data folder.
`python -m deploy.chaos` acts only on the nodes listed there, and only while
they are still the launcher's children.
"""

from __future__ import annotations

import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from redis.crc import key_slot

from common import keys
from common.embedded import EmbeddedRedisError
from common.embedded_cluster import EmbeddedCluster

TOPOLOGIES = ("single", "cluster", "replicated")
STATE_FILE = "redis-nodes.json"
# A primary is restarted once its shard has another primary, or after this
# long (a shard whose replicas are gone too must come back on its own data).
RESTART_AFTER_S = 10.0


class TopologyError(ValueError):
    pass


def read_topology(env: dict) -> str:
    value = (env.get("REDIS_TOPOLOGY") or "single").strip().lower()
    if value not in TOPOLOGIES:
        raise TopologyError(
            f"REDIS_TOPOLOGY={value!r} is not one of {', '.join(TOPOLOGIES)}"
        )
    return value


def region_slot(region: str) -> int:
    """The hash slot of every key of a region (they share the hash tag)."""
    return key_slot(keys.events(region).encode())


def state_path(data_dir: Path) -> Path:
    return Path(data_dir) / STATE_FILE


def node_shards(cluster: EmbeddedCluster) -> dict[int, int]:
    """Each node's shard by port, as the cluster sees it now."""
    return {t["port"]: t["shard"] for t in cluster.topology() if t["shard"] is not None}


def write_state(path: Path, topology: str, cluster: EmbeddedCluster, admin_file: Path,
                shards: dict[int, int]) -> None:
    """Write the record atomically, readable and writable by its owner only."""
    state = {
        "launcher_pid": os.getpid(),
        "topology": topology,
        "admin_password_file": str(admin_file),
        "slot_ranges": [list(r) for r in cluster.slot_ranges()],
        "nodes": [
            {"port": n.port, "pid": n.process.pid if n.process else None,
             "data_dir": str(n.data_dir), "shard": shards.get(n.port)}
            for n in cluster.nodes
        ],
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state, f, indent=1)
    os.replace(tmp, path)


def load_state(path: Path) -> dict:
    """The launcher's record, refused unless it is this user's own and private:
    whoever could write it could name any process for chaos to signal."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise TopologyError(
            f"no record of embedded nodes at {path}: chaos acts only on the Redis nodes "
            "that `REDIS_TOPOLOGY=replicated make run` started (and records there), "
            "never on another Redis. Start it first, with the same DATA_DIR."
        ) from None
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TopologyError(
            f"{path} is not private to this user (mode {stat.S_IMODE(info.st_mode):o}, "
            f"owner uid {info.st_uid}): refusing to act on the processes it names"
        )
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise TopologyError(f"{path} is not a launcher's record: {exc}") from None


def remove_state(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def describe_nodes(cluster: EmbeddedCluster, regions: list[str]) -> list[str]:
    """One line per node: address, role, shard (slots, regions), what it follows."""
    by_shard = {}
    for name in regions:
        by_shard.setdefault(cluster.shard_of_slot(region_slot(name)), []).append(name)
    ranges = cluster.slot_ranges()
    lines = []
    for t in sorted(cluster.topology(), key=lambda t: (t["shard"] is None, t["shard"],
                                                        t["role"] != "primary", t["port"])):
        shard = t["shard"]
        where = "shard ?" if shard is None else (
            f"shard {shard} (slots {ranges[shard][0]}-{ranges[shard][1]}"
            f"{'; regions ' + ','.join(by_shard[shard]) if shard in by_shard else ''})"
        )
        follows = f", follows 127.0.0.1:{t['follows']}" if t["role"] == "replica" else ""
        lines.append(f"  node 127.0.0.1:{t['port']:<5}  {t['role']:<7}  {where}{follows}")
    return lines


@dataclass
class Dead:
    since: float
    shard: int | None
    was_primary: bool
    wait_for_successor: bool  # a primary with a replica running to take over
    next_try: float = 0.0


@dataclass
class Supervisor:
    """Restarts a node that dies, as an orchestrator would: on its own data,
    once its shard has a new primary, so that it rejoins as a replica of it
    (a node back before the cluster noticed would simply stay primary)."""

    cluster: EmbeddedCluster
    restart_after_s: float = RESTART_AFTER_S
    dead: dict[int, Dead] = field(default_factory=dict)
    restarts: int = 0

    def tick(self, stopping: bool = False) -> list[str]:
        """Look at every node once; returns what happened, one line per event.
        Cheap while every node runs (a poll of each process)."""
        if stopping:
            return []
        lines = []
        now = time.monotonic()
        for node in self.cluster.nodes:
            if node.alive() or node.port in self.dead:
                continue
            topology = self.cluster.topology()
            seen = {t["port"]: t for t in topology}.get(node.port, {})
            # The cluster's view still names a dead primary as primary until a
            # replica takes over; with no replica running none will.
            standby = [t for t in topology if t["shard"] == seen.get("shard")
                       and t["role"] == "replica" and t["alive"]]
            was_primary = seen.get("role") == "primary"
            self.dead[node.port] = Dead(
                now, seen.get("shard"), was_primary, was_primary and bool(standby)
            )
            code = node.process.returncode if node.process else None
            lines.append(
                f"redis node 127.0.0.1:{node.port} ({seen.get('role', '?')}, shard "
                f"{seen.get('shard', '?')}) exited with {code}; restarting it on its own data"
                + (" once a replica has taken over"
                   if self.dead[node.port].wait_for_successor else "")
            )
        for port, dead in list(self.dead.items()):
            if now < dead.next_try:
                continue
            node = self.cluster.node(port)
            successor = None
            if dead.wait_for_successor and dead.shard is not None:
                primary = self.cluster.primary(dead.shard)
                successor = primary if primary is not None and primary.port != port else None
                if successor is None and now - dead.since < self.restart_after_s:
                    continue
            try:
                node.start()
            except EmbeddedRedisError as exc:
                dead.next_try = now + self.restart_after_s
                lines.append(f"redis node 127.0.0.1:{port} did not start again ({exc}); "
                             f"trying again in {self.restart_after_s:.0f} s")
                continue
            self.restarts += 1
            del self.dead[port]
            took = time.monotonic() - dead.since
            if successor is not None:
                lines.append(
                    f"redis node 127.0.0.1:{port} restarted ({took:.1f} s after it died); "
                    f"shard {dead.shard}'s primary is 127.0.0.1:{successor.port} now, the "
                    "node rejoins as its replica"
                )
            elif dead.was_primary:
                lines.append(
                    f"redis node 127.0.0.1:{port} restarted ({took:.1f} s after it died); no "
                    f"replica took over shard {dead.shard}, so it serves it again"
                )
            else:
                lines.append(
                    f"redis node 127.0.0.1:{port} restarted ({took:.1f} s after it died); it "
                    f"rejoins shard {dead.shard} as a replica"
                )
        return lines
