"""Fail a Redis primary on purpose, for the demo: run it in a second terminal
while `REDIS_TOPOLOGY=replicated make run` runs, and watch the dashboard.

    python -m deploy.chaos kill-primary [REGION]            # SIGKILL, a crash
    python -m deploy.chaos freeze-primary [REGION] [--seconds N]   # SIGSTOP, then SIGCONT
    python -m deploy.chaos nodes                            # the nodes and their roles

REGION (default: the first of REGIONS) picks the shard that holds the region's
keys (their hash tag's slot). Only the nodes that the launcher started and
recorded in DATA_DIR/redis-nodes.json are touched, and only while each is
still a child of that running launcher: any other Redis is refused, with the
reason. A killed node is restarted by the launcher's supervisor and rejoins as
a replica; a frozen one rejoins by itself when it resumes.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

import redis as redis_sync
from redis.backoff import NoBackoff
from redis.retry import Retry

from common.regions import parse_regions
from deploy.processes import ROOT
from deploy.topology import TopologyError, load_state, region_slot, state_path

PROMOTION_WAIT_S = 15.0


class Refused(RuntimeError):
    """Not a node this tool may touch; the message says why."""


def say(message: str) -> None:
    print(f"[chaos] {message}", flush=True)


def _proc_stat(pid: int) -> tuple[int, list[str]]:
    """(parent pid, command line) of a process, from /proc."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        # The command name may hold spaces and parentheses: split after the last ')'.
        rest = f.read().rsplit(b")", 1)[1].split()
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        cmdline = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    return int(rest[1]), cmdline


def check_launcher(state: dict) -> int:
    pid = state.get("launcher_pid")
    if not isinstance(pid, int):
        raise Refused("the record names no launcher")
    try:
        _, cmdline = _proc_stat(pid)
    except (FileNotFoundError, ProcessLookupError, OSError):
        raise Refused(
            f"the launcher that wrote the record (pid {pid}) is not running: its nodes are "
            "gone, and the pids it recorded may belong to other processes now"
        ) from None
    if "deploy.run" not in cmdline:
        raise Refused(f"pid {pid} is not the launcher (`python -m deploy.run`): {cmdline[:3]}")
    return pid


def check_node(state: dict, node: dict, launcher_pid: int) -> int:
    """The node's pid, if it is a Redis server that the launcher started on that port."""
    pid, port = node.get("pid"), node.get("port")
    try:
        parent, cmdline = _proc_stat(pid)
    except (FileNotFoundError, ProcessLookupError, OSError, TypeError):
        raise Refused(f"node 127.0.0.1:{port}: process {pid} is not running") from None
    if parent != launcher_pid:
        raise Refused(
            f"node 127.0.0.1:{port}: process {pid} is not a child of the launcher "
            f"(pid {launcher_pid}) but of {parent}"
        )
    try:
        server = Path(os.readlink(f"/proc/{pid}/exe")).name
    except OSError:
        server = ""
    # The server rewrites its title to "valkey-server 127.0.0.1:PORT [cluster]".
    title = " ".join(cmdline)
    if server not in ("valkey-server", "redis-server") or f":{port} " not in f"{title} ":
        raise Refused(f"node 127.0.0.1:{port}: process {pid} is not its Redis server "
                      f"({server or '?'}: {title[:80]})")
    return pid


def admin_password(state: dict) -> str | None:
    path = state.get("admin_password_file")
    if not path:
        return None
    return Path(path).read_text().strip() or None


def ask_shards(state: dict, password: str | None, skip: int | None = None) -> list[dict]:
    """CLUSTER SHARDS from the first recorded node that answers (`skip`: the
    node this tool has frozen, asked last)."""
    nodes = sorted(state["nodes"], key=lambda n: n["port"] == skip)
    for node in nodes:
        # No retries: redis-py's default (10, with backoff) would spend
        # seconds on a frozen node before asking the next.
        client = redis_sync.Redis(
            host="127.0.0.1", port=node["port"], password=password, decode_responses=True,
            socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0),
        )
        try:
            return [_as_dict(s) for s in client.execute_command("CLUSTER", "SHARDS")]
        except redis_sync.ResponseError as exc:
            raise Refused(f"127.0.0.1:{node['port']} is not a Redis Cluster node ({exc})") from None
        except redis_sync.RedisError:
            continue
        finally:
            client.close()
    raise Refused("no recorded node answers")


def _as_dict(value):
    """A RESP2 map (flat list of names and values) as a dict, down to the nodes."""
    if isinstance(value, list):
        value = dict(zip(value[::2], value[1::2]))
    value["nodes"] = [n if isinstance(n, dict) else dict(zip(n[::2], n[1::2]))
                      for n in value.get("nodes") or ()]
    return value


def primary_of(shards: list[dict], slot: int) -> tuple[dict, dict]:
    """(shard, its online primary) holding `slot`."""
    for shard in shards:
        slots = shard["slots"]
        if any(slots[i] <= slot <= slots[i + 1] for i in range(0, len(slots), 2)):
            for node in shard["nodes"]:
                if node["role"] == "master" and node["health"] == "online":
                    return shard, node
            raise Refused(f"slot {slot}'s shard has no online primary right now")
    raise Refused(f"no shard serves slot {slot}")


def wait_promotion(state, password, slot: int, old_port: int, started: float) -> int | None:
    """The new primary's port once a node other than `old_port` serves the slot."""
    deadline = started + PROMOTION_WAIT_S
    while time.monotonic() < deadline:
        try:
            _, node = primary_of(ask_shards(state, password, skip=old_port), slot)
            if node["port"] != old_port:
                return node["port"]
        except Refused:
            pass
        time.sleep(0.1)
    return None


def target(state: dict, region: str) -> tuple[int, dict, dict, int]:
    launcher = check_launcher(state)
    password = admin_password(state)
    slot = region_slot(region)
    shard, primary = primary_of(ask_shards(state, password), slot)
    recorded = {n["port"]: n for n in state["nodes"]}
    node = recorded.get(primary["port"])
    if node is None:
        raise Refused(f"the primary 127.0.0.1:{primary['port']} is not a node the launcher "
                      "started")
    pid = check_node(state, node, launcher)
    return slot, shard, primary, pid


def describe(shard: dict, slot: int, region: str) -> str:
    ranges = shard["slots"]
    slots = ", ".join(f"{ranges[i]}-{ranges[i + 1]}" for i in range(0, len(ranges), 2))
    replicas = [f"127.0.0.1:{n['port']}" for n in shard["nodes"] if n["role"] != "master"]
    return (f"region {region} (slot {slot}) lives in the shard of slots {slots}; "
            f"replicas: {', '.join(replicas) or 'none'}")


def kill_primary(state: dict, region: str) -> int:
    slot, shard, primary, pid = target(state, region)
    say(describe(shard, slot, region))
    os.kill(pid, signal.SIGKILL)
    started = time.monotonic()
    say(f"killed the primary 127.0.0.1:{primary['port']} (pid {pid}, SIGKILL)")
    if len(shard["nodes"]) < 2:
        say("the shard has no replica: it is down until the launcher has restarted the node")
        return 0
    new = wait_promotion(state, admin_password(state), slot, primary["port"], started)
    if new is None:
        say(f"no replica took over within {PROMOTION_WAIT_S:.0f} s; the launcher restarts "
            "the node on its own data")
        return 1
    say(f"127.0.0.1:{new} is the primary now ({time.monotonic() - started:.1f} s after the "
        "kill); the launcher restarts the killed node, which rejoins as its replica")
    return 0


def freeze_primary(state: dict, region: str, seconds: float) -> int:
    slot, shard, primary, pid = target(state, region)
    say(describe(shard, slot, region))
    os.kill(pid, signal.SIGSTOP)
    started = time.monotonic()
    promoted = None
    try:
        say(f"froze the primary 127.0.0.1:{primary['port']} (pid {pid}, SIGSTOP) for "
            f"{seconds:g} s")
        password = admin_password(state)
        while time.monotonic() - started < seconds:
            if promoted is None:
                promoted = _primary_port(state, password, slot, primary["port"])
                if promoted is not None:
                    say(f"127.0.0.1:{promoted} is the primary now "
                        f"({time.monotonic() - started:.1f} s after the freeze)")
            time.sleep(0.1)
    finally:
        # Never leave a node hung, even on Ctrl-C.
        os.kill(pid, signal.SIGCONT)
    say(f"resumed 127.0.0.1:{primary['port']} (SIGCONT) after {time.monotonic() - started:.1f} s"
        + ("; it rejoins as a replica of the new primary" if promoted else
           "; no replica took over meanwhile, it is still the primary"))
    return 0


def _primary_port(state, password, slot: int, old_port: int) -> int | None:
    try:
        _, node = primary_of(ask_shards(state, password, skip=old_port), slot)
    except Refused:
        return None
    return node["port"] if node["port"] != old_port else None


def show_nodes(state: dict) -> int:
    check_launcher(state)
    for shard in sorted(ask_shards(state, admin_password(state)), key=lambda s: s["slots"]):
        ranges = shard["slots"]
        slots = ", ".join(f"{ranges[i]}-{ranges[i + 1]}" for i in range(0, len(ranges), 2))
        for n in sorted(shard["nodes"], key=lambda n: (n["role"] != "master", n["port"])):
            role = "primary" if n["role"] == "master" else "replica"
            say(f"slots {slots}: 127.0.0.1:{n['port']} {role} {n['health']} "
                f"offset {n['replication-offset']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.chaos", description=__doc__.splitlines()[0],
    )
    sub = parser.add_subparsers(dest="action", required=True)
    regions = [r.name for r in parse_regions(os.environ.get("REGIONS"))]
    for name, text in (("kill-primary", "SIGKILL the primary of the region's shard"),
                       ("freeze-primary", "SIGSTOP the primary of the region's shard, "
                                          "SIGCONT after --seconds")):
        p = sub.add_parser(name, help=text)
        p.add_argument("region", nargs="?", default=regions[0], choices=regions)
        if name == "freeze-primary":
            p.add_argument("--seconds", type=float, default=5.0,
                           help="how long it stays frozen (default 5)")
    sub.add_parser("nodes", help="every node of the cluster, its role and offset")
    args = parser.parse_args(argv)
    if args.action == "freeze-primary" and not 0 < args.seconds <= 300:
        parser.error("--seconds must be in (0, 300]")
    data_dir = Path(os.environ.get("DATA_DIR", ROOT / ".data"))
    try:
        state = load_state(state_path(data_dir))
        if args.action == "nodes":
            return show_nodes(state)
        if state.get("topology") != "replicated":
            say(f"the launcher runs the {state.get('topology')!r} topology: a primary has no "
                "replica to take over, the shard is down until the node is back")
        if args.action == "kill-primary":
            return kill_primary(state, args.region)
        return freeze_primary(state, args.region, args.seconds)
    except (TopologyError, Refused) as exc:
        say(f"refused: {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
