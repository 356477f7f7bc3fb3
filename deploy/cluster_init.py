"""Form a Redis Cluster of primaries and replicas from fresh nodes: the
one-shot service of docker-compose.replicated.yml (the redis image there has
no `redis-cli --cluster`).

    REDIS_ADMIN_PASSWORD=... python -m deploy.cluster_init \\
        --nodes redis-1:6379,redis-2:6379,...,redis-9:6379 --masters 3

The admin's password is REDIS_ADMIN_PASSWORD or else the one in REDIS_URL
(the admin's URL: the compose override sources the `init` service's
admin.env, so no password is ever in the compose file).

The first `--masters` nodes get a third of the slots each; the others become
replicas, in order, of master 0, 0, 1, 1, 2, 2 (for two replicas each). Run
again on a formed cluster it changes nothing: a node that already holds slots
or follows a primary is left as it is, so a restarted stack keeps its data.
Exits 0 once every node sees the cluster ok with each primary's replicas.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from urllib.parse import unquote, urlsplit

import redis as redis_sync

WAIT_S = 120.0


def say(message: str) -> None:
    print(f"[cluster-init] {message}", flush=True)


def parse_nodes(text: str) -> list[tuple[str, int]]:
    nodes = []
    for item in text.split(","):
        host, _, port = item.strip().rpartition(":")
        nodes.append((host, int(port)))
    return nodes


def myself(client: redis_sync.Redis) -> dict:
    for line in client.execute_command("CLUSTER", "NODES").splitlines():
        parts = line.split()
        if "myself" in parts[2]:
            return {"id": parts[0], "flags": parts[2], "primary": parts[3],
                    "slots": parts[8:]}
    raise RuntimeError("CLUSTER NODES without myself")


def until(check, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (redis_sync.RedisError, OSError) as exc:
            last = exc
        time.sleep(0.2)
    raise SystemExit(f"[cluster-init] {what} within {timeout:.0f} s (last error: {last})")


def admin_password(env) -> str | None:
    if env.get("REDIS_ADMIN_PASSWORD"):
        return env["REDIS_ADMIN_PASSWORD"]
    password = urlsplit(env.get("REDIS_URL", "")).password
    return unquote(password) if password else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.cluster_init",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", required=True, help="host:port,... (primaries first)")
    parser.add_argument("--masters", type=int, default=3)
    args = parser.parse_args(argv)
    nodes = parse_nodes(args.nodes)
    masters = args.masters
    if not 1 <= masters <= len(nodes) or (len(nodes) - masters) % masters:
        parser.error("the nodes must be the masters and the same number of replicas for each")
    replicas = (len(nodes) - masters) // masters
    password = admin_password(os.environ)

    # CLUSTER MEET takes an address, not a name.
    ips = [until(lambda h=h: socket.gethostbyname(h), f"{h} did not resolve") for h, _ in nodes]
    clients = [redis_sync.Redis(host=ip, port=port, password=password, decode_responses=True,
                                socket_timeout=5, socket_connect_timeout=2)
               for ip, (_, port) in zip(ips, nodes)]
    for (host, port), client in zip(nodes, clients):
        until(client.ping, f"{host}:{port} did not answer")
    say(f"{len(nodes)} nodes answer: {masters} primaries with {replicas} replicas each")

    per = 16384 // masters
    for i in range(masters):
        first, last = i * per, 16383 if i == masters - 1 else (i + 1) * per - 1
        me = myself(clients[i])
        if me["slots"] or "slave" in me["flags"]:
            continue  # formed before
        clients[i].execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
        say(f"{nodes[i][0]}: slots {first}-{last}")
    for ip, (host, port), client in zip(ips[1:], nodes[1:], clients[1:]):
        clients[0].execute_command("CLUSTER", "MEET", ip, port)
    until(lambda: all(len(c.execute_command("CLUSTER", "NODES").splitlines()) == len(nodes)
                      for c in clients), "the nodes did not meet")
    ids = [myself(c)["id"] for c in clients[:masters]]
    for j, client in enumerate(clients[masters:]):
        primary = ids[j // replicas]
        me = myself(client)
        if me["slots"] or me["primary"] != "-":
            continue  # a replica already, or a primary after a failover
        until(lambda c=client, p=primary: c.execute_command("CLUSTER", "REPLICATE", p),
              f"{nodes[masters + j][0]} could not replicate {primary}")
        say(f"{nodes[masters + j][0]}: replica of {nodes[j // replicas][0]}")

    def formed() -> bool:
        for client in clients:
            if "cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                return False
            lines = [line.split() for line in
                     client.execute_command("CLUSTER", "NODES").splitlines()]
            primaries = [p for p in lines if "master" in p[2] and len(p) > 8]
            if len(primaries) != masters or any(
                sum(1 for r in lines if r[3] == p[0]) != replicas for p in primaries
            ):
                return False
        return True

    until(formed, "the cluster did not form")
    say("cluster ok")
    for client in clients:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
