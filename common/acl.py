"""Least privilege: the Redis ACL user of each process, as data.

Database per service, enforced by the server: each process connects as its
own ACL user, which may touch only its own keys and the shared ones it must
(read-only, `%R~`, where it only reads), and run only the commands its code
and its Lua scripts send (`-@all`, then each command by name: no FLUSHALL,
CONFIG, KEYS, DEBUG, MONITOR, ACL, MODULE, SCRIPT FLUSH, SHUTDOWN, ...).
docs/security.md explains every pattern; a test keeps that page in step
with this module.

Here are the rules and how a server gets them:

- `install_users(admin_url, passwords)` creates the users on a running server
  (on every node of a cluster: ACL users are per node) with an admin
  connection, and saves them to the server's ACL file when it has one, so
  they survive a restart. `make run` and the tests do this on the embedded
  server; each process then gets its own `REDIS_URL` (`service_url`).
- `acl_file_text(passwords, admin_password)` is an ACL file (passwords as
  SHA-256 hashes) for a server started with `--aclfile` (docker compose's
  credentials, deploy/credentials.py).

The same rules for other places (docs/security.md's tables, MemoryDB access
strings, Kubernetes Secrets, compose files) come from `python -m deploy.acl`
(deploy/acl.py).

Notes that shape the rules:
- Lua runs as Redis Functions that the admin loads (common/scripts.py); the
  services may call them (FCALL) and run no Lua of their own (no EVAL,
  EVALSHA, SCRIPT or FUNCTION). A function runs with the caller's
  permissions, and FCALL declares its keys read-write: every key a function
  touches must be fully granted.
- The JSON module of the embedded server declares its keys read-write even
  for JSON.GET, so a JSON document cannot be granted read-only there. The
  start-up check (`check_json`: JSON.GET of `rh:{probe}:json-check`, a key
  nobody writes) is therefore granted with full access to every user.
- redis-py names itself on connect (CLIENT SETINFO); on a cluster it reads
  the topology (CLUSTER SLOTS), key positions (COMMAND, COMMAND GETKEYS) and
  follows slot migrations (ASKING).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

# The services, by module name, in the order they start.
SERVICES = ("trip_service", "driver_service", "gateway")


@dataclass(frozen=True, slots=True)
class Grant:
    """A key pattern (glob) with its access, and why the user needs it."""

    pattern: str
    access: str  # "rw" or "r"
    why: str

    @property
    def rule(self) -> str:
        return f"~{self.pattern}" if self.access == "rw" else f"%R~{self.pattern}"


@dataclass(frozen=True, slots=True)
class AclUser:
    service: str  # the module: trip_service, driver_service, gateway
    name: str  # the ACL user name (MemoryDB allows letters, digits and hyphens)
    env: str  # the compose variable holding its password
    grants: tuple[Grant, ...]
    commands: tuple[str, ...]  # lower case; `container|sub` for one subcommand

    def rules(self) -> list[str]:
        """ACL rules without the password: on, no keys or channels but these,
        no command but these."""
        return [
            "on",
            "resetkeys",
            "resetchannels",
            "-@all",
            *(f"+{c}" for c in dict.fromkeys(self.commands)),
            *(g.rule for g in self.grants),
        ]


def _r(region_key: str) -> str:
    """A key of any region: `rh:{<region>}:<rest>` (common.keys)."""
    return "rh:{*}:" + region_key


PROBE = Grant(
    "rh:{probe}:json-check", "rw",
    "the start-up check that the server has JSON (JSON.GET of a key that never "
    "exists; the JSON module declares even a read's key read-write)",
)

# Sent by every process: readiness, the client's handshake, scripts.
BASE_COMMANDS = (
    "ping",  # /readyz
    "client|setinfo",  # redis-py names itself on connect
    "fcall",  # the functions the admin loaded (common/scripts.py); no EVAL, SCRIPT, FUNCTION
    "json.get",  # check_json at start
)
# A cluster client's own commands: topology, key positions, slot migrations.
CLUSTER_COMMANDS = ("cluster|slots", "command", "asking")

# Commands inside the Lua scripts (prelude, trip library, each script).
PRELUDE_COMMANDS = ("time", "xadd", "rpush", "set", "json.get")
TRIP_SCRIPT_COMMANDS = (
    "json.set", "json.del", "get", "del", "zadd", "zrem", "geoadd", "hincrby", "hdel",
)

TRIP_SERVICE = AclUser(
    service="trip_service",
    name="ridehail-trip-service",
    env="TRIP_SERVICE_REDIS_PASSWORD",
    grants=(
        Grant(_r("trip:*"), "rw", "trip documents and each trip's event list: it creates, "
              "cancels and rates trips (owner of the shared state)"),
        Grant(_r("pending:*"), "rw", "the ranking of requested trips"),
        Grant(_r("pickups:*"), "rw", "pickups of waiting trips, kept by the trip scripts"),
        Grant(_r("demand:*"), "rw", "pending trips per surge cell"),
        Grant(_r("rider:*"), "rw", "rider history and the rider's active trip"),
        Grant(_r("deadline:expiry"), "rw", "trip expiry deadlines, set at request"),
        Grant(_r("trips:by_status"), "rw", "trip counters per status (ops overview)"),
        Grant(_r("trips:active"), "rw", "the index of active trips (ops overview)"),
        Grant(_r("events"), "rw", "the region's event stream: its scripts append events"),
        Grant(_r("supply:*"), "r", "available drivers per surge cell, for the surge "
              "(owned by driver_service)"),
        Grant(_r("deliveries:*"), "rw", "delivery records of the consumer groups, for the "
              "trip timeline; the archiver deletes those of a trip gone cold"),
        Grant(_r("seen:*"), "rw", "idempotency marks of the groups: the archiver deletes "
              "those of a trip gone cold"),
        Grant(_r("driver:*:trips"), "rw", "the trips each driver drove: driver history "
              "across hot and cold, and the archiver removes a trip gone cold"),
        Grant(_r("archive:due"), "rw", "finished trips due to go cold (archiver)"),
        Grant(_r("events:dead"), "rw", "dead letters of its consumer group (archive)"),
        PROBE,
    ),
    commands=(
        *BASE_COMMANDS, *CLUSTER_COMMANDS, *PRELUDE_COMMANDS, *TRIP_SCRIPT_COMMANDS,
        "json.mget", "exists", "lrange", "hget", "hgetall", "json.arrappend",
        "zrank", "zrange", "zcard", "zrevrange", "zrevrangebyscore",
        # the archiver: its consumer group, its claims and drops, memory for ops
        "zrangebyscore", "zcount", "llen", "xgroup|create", "xreadgroup", "xack",
        "xautoclaim", "xpending", "xinfo|groups", "xinfo|consumers", "xgroup|delconsumer",
        "multi", "exec", "discard", "info",
        "wait", "waitaof",  # WAIT_REPLICAS > 0
    ),
)

DRIVER_SERVICE = AclUser(
    service="driver_service",
    name="ridehail-driver-service",
    env="DRIVER_SERVICE_REDIS_PASSWORD",
    grants=(
        Grant(_r("driver:*"), "rw", "driver documents and the trips each driver drove"),
        Grant(_r("geo:*"), "rw", "locations of available drivers"),
        Grant(_r("supply:*"), "rw", "available drivers per surge cell"),
        Grant(_r("offers:*"), "rw", "per-driver offer queues (BLPOP long poll)"),
        Grant(_r("deadline:offers"), "rw", "offer timeouts"),
        Grant(_r("drivers:online"), "rw", "online drivers per product"),
        Grant(_r("drivers:online:ids"), "rw", "the online drivers (ops overview)"),
        Grant(_r("trip:*"), "rw", "the shared trip documents and their event lists: offers, "
              "accept, arrive, start, complete, driver cancel, expiry"),
        Grant(_r("pending:*"), "rw", "the ranking: an assigned or expired trip leaves it, a "
              "trip a driver cancels returns to it"),
        Grant(_r("pickups:*"), "rw", "waiting pickups near a driver who becomes available"),
        Grant(_r("demand:*"), "rw", "surge demand, released when a trip is assigned or expires"),
        Grant(_r("deadline:expiry"), "rw", "the sweeper expires trips"),
        Grant(_r("trips:by_status"), "rw", "trip counters of its transitions"),
        Grant(_r("trips:active"), "rw", "a trip leaves the active index when it ends"),
        Grant(_r("rider:*:active"), "rw", "a completed or expired trip frees its rider"),
        Grant(_r("events"), "rw", "the event stream: its scripts append, its consumer "
              "groups read, acknowledge, reclaim, and it trims the stream"),
        Grant(_r("events:dead"), "rw", "dead letters of its consumer groups"),
        Grant(_r("events:rate"), "rw", "samples of the stream's entries-added counter: "
              "events per second of the ops overview"),
        Grant(_r("deliveries:*"), "rw", "delivery records of its consumer groups"),
        Grant(_r("seen:*"), "rw", "idempotency marks of its consumers"),
        PROBE,
    ),
    commands=(
        *BASE_COMMANDS, *CLUSTER_COMMANDS, *PRELUDE_COMMANDS, *TRIP_SCRIPT_COMMANDS,
        # driver scripts
        "geopos", "zrangebyscore", "zscore", "json.arrappend", "json.mset",
        # reads and the sweeper
        "json.mget", "time", "geosearch", "zmscore", "zrange", "zrank", "zcard",
        "zrevrange", "zrevrangebyscore", "zremrangebyscore", "hgetall", "blpop",
        # consumer groups, dead letters, delivery records, trimming, ops overview
        "xgroup|create", "xreadgroup", "xack", "xautoclaim", "xpending", "xlen",
        "xinfo|groups", "xinfo|stream", "xtrim", "hset", "expire", "multi", "exec",
        "discard",
        # inside remove_consumers (common/streams/admin.py): a stopped or dead consumer leaves
        "xinfo|consumers", "xgroup|delconsumer",
        "wait", "waitaof",  # WAIT_REPLICAS > 0
    ),
)

GATEWAY = AclUser(
    service="gateway",
    name="ridehail-gateway",
    env="GATEWAY_REDIS_PASSWORD",
    grants=(
        Grant("gw:*", "rw", "identity: accounts, credential hashes, profiles, sessions, "
              "idempotency records, rate limits"),
        Grant(_r("events"), "r", "the region's event stream, read without a group for SSE, "
              "the ops stream and consumer-group gauges"),
        Grant(_r("events:dead"), "r", "the dead-letter backlog gauge"),
        Grant(_r("trip:*:events"), "r", "a trip's past events, replayed to a new SSE client"),
        PROBE,
    ),
    commands=(
        *BASE_COMMANDS, *CLUSTER_COMMANDS,
        # gateway/lua: sessions, token buckets, login windows, idempotency, accounts
        "get", "set", "del", "hmget", "hset", "pexpire", "pexpireat", "pttl", "time",
        "zadd", "zcard", "zrange", "zremrangebyscore", "zrem",
        # SSE and gauges
        "lrange", "xread", "xrange", "xrevrange", "xlen", "xinfo|groups",
        "wait", "waitaof",  # WAIT_REPLICAS > 0
        "cluster|shards",  # the ops topology: every node's role, offset and health
    ),
)

USERS: dict[str, AclUser] = {u.service: u for u in (TRIP_SERVICE, DRIVER_SERVICE, GATEWAY)}

# Commands no service may run (tests/security asks the server with ACL DRYRUN).
DANGEROUS = (
    ("FLUSHALL",), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("CONFIG", "SET", "save", ""),
    ("DEBUG", "SLEEP", "0"), ("KEYS", "*"), ("SCAN", "0"), ("SHUTDOWN",), ("MONITOR",),
    ("ACL", "SETUSER", "x"), ("ACL", "LIST"), ("MODULE", "LIST"), ("SCRIPT", "FLUSH"),
    ("SAVE",), ("BGREWRITEAOF",), ("REPLICAOF", "NO", "ONE"), ("CLUSTER", "RESET"),
    ("CLIENT", "KILL", "ID", "1"), ("CLIENT", "LIST"), ("SWAPDB", "0", "1"),
    ("FUNCTION", "FLUSH"), ("EVAL", "return 1", "0"), ("RENAME", "a", "b"),
    # Lua of their own: none (the admin loads the functions, common/scripts.py).
    ("SCRIPT", "LOAD", "return 1"), ("EVALSHA", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db", "0"),
    ("EVAL_RO", "return 1", "0"), ("FUNCTION", "LOAD", "#!lua name=x"), ("FUNCTION", "DELETE", "x"),
    ("FUNCTION", "RESTORE", "x"), ("FUNCTION", "KILL"), ("SCRIPT", "KILL"),
)


# --- passwords and URLs ---------------------------------------------------
def new_passwords() -> dict[str, str]:
    """A fresh password per service user (never written to the repository)."""
    return {service: secrets.token_urlsafe(24) for service in USERS}


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def service_url(url: str, user: str, password: str) -> str:
    """`url` with this user's credentials in place of any it had."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def service_urls(url: str, passwords: dict[str, str]) -> dict[str, str]:
    return {s: service_url(url, USERS[s].name, passwords[s]) for s in USERS}


# --- on a running server ----------------------------------------------------
def setuser_args(user: AclUser, password: str) -> list[str]:
    """ACL SETUSER: `reset` first, so a second run replaces the old password."""
    return ["ACL", "SETUSER", user.name, "reset", *user.rules(), f">{password}"]


def install_users(admin_url: str, passwords: dict[str, str]) -> dict[str, str]:
    """Create (or replace) every service user through an admin connection, on
    every node of a cluster, and save them to the ACL file where there is one.
    Returns each service's REDIS_URL."""
    import redis as redis_sync
    from redis.cluster import RedisCluster
    from redis.exceptions import ResponseError

    from .redisconn import is_cluster_url

    if is_cluster_url(admin_url):
        cluster = RedisCluster.from_url(admin_url.replace("+cluster", "", 1))
        try:
            nodes = [(n.host, n.port) for n in cluster.get_nodes()]
            # CLUSTER SLOTS, where the client finds its nodes, leaves out a
            # replica the cluster has not yet heard has synced; such a replica
            # without the users would fail every service once promoted.
            view = cluster.get_default_node().redis_connection.execute_command(
                "CLUSTER NODES")
        finally:
            cluster.close()
        for address, node in view.items():
            host, _, port = address.rpartition(":")
            if "noaddr" not in node["flags"] and (host, int(port)) not in nodes:
                nodes.append((host or nodes[0][0], int(port)))
        parts = urlsplit(admin_url.replace("+cluster", "", 1))
        clients = [
            redis_sync.Redis(host=host, port=port, username=parts.username,
                             password=parts.password, ssl=parts.scheme == "rediss")
            for host, port in nodes
        ]
    else:
        clients = [redis_sync.Redis.from_url(admin_url)]
    try:
        for client in clients:
            for service, user in USERS.items():
                client.execute_command(*setuser_args(user, passwords[service]))
            try:
                client.execute_command("ACL", "SAVE")
            except ResponseError as exc:
                # A server without an ACL file keeps the users until it restarts.
                if "acl file" not in str(exc).lower():
                    raise
    finally:
        for client in clients:
            client.close()
    return service_urls(admin_url, passwords)


# --- the ACL file a server loads ---------------------------------------------
def acl_file_text(passwords: dict[str, str], admin_password: str | None = None) -> str:
    """An ACL file for `--aclfile`: the admin (default user) and the services.

    Without an admin password the default user is switched off: nothing but
    the services can connect."""
    if admin_password:
        default = f"user default on #{password_hash(admin_password)} ~* &* +@all"
    else:
        default = "user default off resetkeys resetchannels -@all"
    lines = [default]
    for service, user in USERS.items():
        lines.append(" ".join(
            ["user", user.name, *user.rules(), f"#{password_hash(passwords[service])}"]
        ))
    return "\n".join(lines) + "\n"
