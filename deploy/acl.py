"""The Redis ACL rules of common/acl.py, written out for where they are used:
the tables of docs/security.md, Amazon MemoryDB's access strings and
commands, the Kubernetes Secrets of deploy/k8s, and the ACL file and `.env`
of docker compose with a Redis of your own.

MemoryDB users take an access string without passwords (`access_string`);
the Secrets and files carry fresh passwords, written readable by their owner
only (the ACL file also by the Redis container's user).

    python -m deploy.acl compose      # deploy/redis/users.acl and .env for docker compose
    python -m deploy.acl k8s --redis-url URL [--database-url URL] --out DIR   # every Secret
    python -m deploy.acl memorydb     # the users as `aws memorydb create-user` commands
    python -m deploy.acl rules        # the ACL SETUSER rules of each user
    python -m deploy.acl tables       # the tables of docs/security.md
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import sys
from pathlib import Path

from common.acl import USERS, AclUser, acl_file_text, new_passwords, service_url, service_urls


def access_string(user: AclUser) -> str:
    """The MemoryDB access string: the rules without `reset` or passwords."""
    return " ".join(user.rules())


def memorydb_commands(acl_name: str = "ridehail") -> str:
    """Shell commands that create the users and their ACL on MemoryDB."""
    lines = []
    for user in USERS.values():
        lines.append(
            "aws memorydb create-user --user-name {name} "
            "--authentication-mode Type=password,Passwords=\"${env}\" "
            "--access-string {access}".format(
                name=user.name, env=user.env, access=shlex.quote(access_string(user))
            )
        )
    names = " ".join(u.name for u in USERS.values())
    lines.append(f"aws memorydb create-acl --acl-name {acl_name} --user-names {names}")
    lines.append(f"aws memorydb update-cluster --cluster-name \"$CLUSTER\" --acl-name {acl_name}")
    return "\n".join(lines) + "\n"


def markdown_table() -> str:
    """The table of docs/security.md: every user, pattern, access and reason."""
    rows = ["| user | key pattern | access | why |", "|---|---|---|---|"]
    for user in USERS.values():
        for g in user.grants:
            access = "read-write" if g.access == "rw" else "read-only"
            rows.append(f"| `{user.name}` | `{g.pattern}` | {access} | {g.why} |")
    return "\n".join(rows) + "\n"


def commands_table() -> str:
    rows = ["| user | commands (everything else is denied: `-@all`) |", "|---|---|"]
    for user in USERS.values():
        # A pipe inside a table cell must be escaped, even in code.
        names = " ".join(f"`{c.upper()}`".replace("|", "\\|")
                         for c in sorted(set(user.commands)))
        rows.append(f"| `{user.name}` | {names} |")
    return "\n".join(rows) + "\n"


# --- Kubernetes -----------------------------------------------------------------
K8S_NAMES = {"trip_service": "trip-service", "driver_service": "driver-service",
             "gateway": "gateway"}


def k8s_secrets(redis_url: str, passwords: dict[str, str], admin_password: str,
                namespace: str = "ridehail", *, ops: tuple[str, str] | None = None,
                internal_token: str | None = None, database_url: str | None = None) -> str:
    """The Secrets deploy/k8s refers to (none is in that folder): each
    service's REDIS_URL (its user and password on `redis_url`),
    ridehail-redis-acl (an ACL file and the admin's password) for the trial
    Redis, and when given: ridehail-secrets (the ops account),
    ridehail-internal (the token the gateway presents to the services) and
    ridehail-postgres (trip_service's DATABASE_URL)."""

    def secret(name: str, data: dict[str, str], component: str) -> str:
        lines = [
            "apiVersion: v1", "kind: Secret", "metadata:", f"  name: {name}",
            f"  namespace: {namespace}", "  labels:", "    app.kubernetes.io/part-of: ridehail",
            f"    app.kubernetes.io/component: {component}", "type: Opaque", "stringData:",
        ]
        for key, value in data.items():
            if "\n" in value:
                lines.append(f"  {key}: |")
                lines += [f"    {line}" for line in value.splitlines()]
            else:
                lines.append(f"  {key}: {json.dumps(value)}")
        return "\n".join(lines) + "\n"

    urls = service_urls(redis_url, passwords)
    docs = [secret(f"ridehail-redis-{K8S_NAMES[s]}", {"REDIS_URL": urls[s]}, "redis-user")
            for s in USERS]
    # The admin's URL, for the Job that loads the functions (no service has it).
    docs.append(secret("ridehail-redis-admin",
                       {"REDIS_URL": service_url(redis_url, "default", admin_password)},
                       "redis-admin"))
    docs.append(secret("ridehail-redis-acl", {
        "users.acl": acl_file_text(passwords, admin_password),
        "admin-password": admin_password,
    }, "redis"))
    if ops:
        docs.append(secret("ridehail-secrets", {"OPS_USER_NAME": ops[0], "OPS_PASSWORD": ops[1]},
                           "ops"))
    if internal_token:
        docs.append(secret("ridehail-internal", {INTERNAL_ENV: internal_token}, "internal"))
    if database_url:
        docs.append(secret("ridehail-postgres", {"DATABASE_URL": database_url}, "postgres"))
    return "---\n".join(docs)


def write_k8s_files(out: Path, redis_url: str, database_url: str | None = None) -> None:
    """DIR/secrets.yaml to apply (every Secret of deploy/k8s, fresh), and
    DIR/passwords.env: the Redis passwords for `aws memorydb create-user` and
    the ops account to sign in with."""
    passwords = new_passwords()
    admin_password = secrets.token_urlsafe(24)
    ops = (f"ops-{secrets.token_hex(4)}", secrets.token_urlsafe(24))
    out.mkdir(parents=True, exist_ok=True)
    _write_private(out / "secrets.yaml", k8s_secrets(
        redis_url, passwords, admin_password, ops=ops,
        internal_token=secrets.token_urlsafe(32), database_url=database_url))
    env = [f"{USERS[s].env}={p}" for s, p in passwords.items()]
    env += [f"{ADMIN_ENV}={admin_password}", f"OPS_USER_NAME={ops[0]}", f"OPS_PASSWORD={ops[1]}"]
    _write_private(out / "passwords.env", "\n".join(env) + "\n")


# --- compose ------------------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent
COMPOSE_ACL_FILE = ROOT / "deploy" / "redis" / "users.acl"
COMPOSE_ENV_FILE = ROOT / ".env"
ADMIN_ENV = "REDIS_ADMIN_PASSWORD"
INTERNAL_ENV = "INTERNAL_TOKEN"


def write_compose_files(acl_path: Path = COMPOSE_ACL_FILE, env_path: Path = COMPOSE_ENV_FILE,
                        passwords: dict[str, str] | None = None,
                        admin_password: str | None = None) -> dict[str, str]:
    """Fresh passwords into the ACL file Redis mounts and the `.env` compose
    reads (both outside git). Other lines of an existing `.env` are kept."""
    passwords = passwords or new_passwords()
    admin_password = admin_password or secrets.token_urlsafe(24)
    values = {USERS[s].env: p for s, p in passwords.items()}
    values[ADMIN_ENV] = admin_password
    # The service-to-service credential (common/internal.py).
    values[INTERNAL_ENV] = secrets.token_urlsafe(32)
    acl_path.parent.mkdir(parents=True, exist_ok=True)
    _write_private(acl_path, acl_file_text(passwords, admin_password))
    kept = []
    if env_path.exists():
        kept = [line for line in env_path.read_text().splitlines()
                if line.split("=", 1)[0].strip() not in values]
    _write_private(env_path, "\n".join([*kept, *(f"{k}={v}" for k, v in values.items())]) + "\n")
    return values


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    # The Redis container runs as its own user and must read the ACL file.
    if path.suffix == ".acl":
        os.chmod(path, 0o644)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    compose = sub.add_parser("compose", help="write deploy/redis/users.acl and .env")
    compose.add_argument("--acl-file", type=Path, default=COMPOSE_ACL_FILE)
    compose.add_argument("--env-file", type=Path, default=COMPOSE_ENV_FILE)
    memorydb = sub.add_parser("memorydb", help="print aws memorydb commands")
    memorydb.add_argument("--acl-name", default="ridehail")
    k8s = sub.add_parser("k8s", help="write the Kubernetes Secrets with fresh passwords")
    k8s.add_argument("--redis-url", required=True,
                     help="the server without credentials, e.g. rediss+cluster://HOST:6379/0")
    k8s.add_argument("--database-url", default=None,
                     help="trip_service's PostgreSQL, with its credentials, e.g. "
                     "postgresql://USER:PASSWORD@postgres:5432/ridehail")
    k8s.add_argument("--out", type=Path, required=True)
    sub.add_parser("rules", help="print the ACL SETUSER rules of each user")
    sub.add_parser("tables", help="print the tables of docs/security.md")
    args = parser.parse_args(argv)
    if args.what == "compose":
        write_compose_files(args.acl_file, args.env_file)
        print(f"wrote {args.acl_file} and the passwords in {args.env_file}; "
              "`docker compose up` reads both")
    elif args.what == "k8s":
        write_k8s_files(args.out, args.redis_url, args.database_url)
        print(f"wrote {args.out / 'secrets.yaml'} (kubectl apply -f) and "
              f"{args.out / 'passwords.env'} (the ops account, and the passwords for "
              "python -m deploy.acl memorydb)")
    elif args.what == "memorydb":
        sys.stdout.write(memorydb_commands(args.acl_name))
    elif args.what == "tables":
        sys.stdout.write(markdown_table() + "\n" + commands_table())
    else:
        for user in USERS.values():
            print(f"ACL SETUSER {user.name} reset {' '.join(user.rules())} ><password>")
    return 0


if __name__ == "__main__":
    sys.exit(main())
