"""The credentials of the docker compose stack, made inside the stack.

`docker compose up` runs `python -m deploy.credentials init` once per start,
as root in the one-shot `init` service, before anything else; it writes into
the `credentials` volume:

    state.json                 every secret (root, 0600): the source of the rest
    redis/users.acl            the ACL file Redis loads (--aclfile; owner: redis)
    redis/admin-password       redis-cli and the health check (owner: redis)
    admin.env                  REDIS_URL of the admin, for loading scripts (root)
    trip_service.env           REDIS_URL, INTERNAL_TOKEN, DATABASE_URL (its uid only)
    driver_service.env         REDIS_URL, INTERNAL_TOKEN (its uid only)
    gateway.env                REDIS_URL, INTERNAL_TOKEN, OPS_USER_NAME, OPS_PASSWORD
    postgres/password          the PostgreSQL superuser's password (root)
    ops.txt                    the ops account, for `show` (root)

The secrets are generated the first time only (a fresh Redis ACL password per
service and for the admin, an ops account with a random name and password, the
token the gateway presents to the services, the PostgreSQL password); every
later start keeps them, rewrites the files derived from them (so a changed
host name or a changed file mode is repaired) and never resets a password.
The ops account is never logged: `docker compose run --rm init show` prints
it (from ops.txt). `docker compose down -v` deletes the volume and
with it every secret (and the data they protect).

Each service runs as a user id of its own (SERVICE_UIDS, the `user:` of each
service in docker-compose.yml), so a service can read its own file and no
other's: a compromised city or gateway does not get the services' Redis users.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from common import acl

DEFAULT_DIR = Path("/run/ridehail")
# The user of each process in docker-compose.yml (`user:`); group 10001 is the
# image's `app` group.
SERVICE_UIDS = {"trip_service": 10011, "driver_service": 10012, "gateway": 10013}
APP_GID = 10001
# The redis user of the official redis image (the server drops to it); root,
# which the health check runs as, reads the files anyway.
REDIS_UID = 999
POSTGRES_USER = "ridehail"
POSTGRES_DB = "ridehail"


def new_state() -> dict[str, object]:
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "redis_passwords": acl.new_passwords(),
        "redis_admin_password": secrets.token_urlsafe(24),
        # A name nobody can guess: a login attempt must find the name first.
        "ops_user_name": f"ops-{secrets.token_hex(4)}",
        "ops_password": secrets.token_urlsafe(24),
        "internal_token": secrets.token_urlsafe(32),
        "postgres_password": secrets.token_urlsafe(24),
    }


def env_text(values: dict[str, str]) -> str:
    """A file the entrypoint sources (`set -a; . FILE`): single-quoted values."""
    lines = []
    for name, value in values.items():
        if "'" in value or "\n" in value:
            raise ValueError(f"{name}: a value with a quote or a newline")
        lines.append(f"{name}='{value}'")
    return "\n".join(lines) + "\n"


def files_of(state: dict, redis_url: str, database_url: str) -> dict[str, tuple[str, int, int]]:
    """Every derived file: relative path -> (text, owner uid, mode)."""
    passwords = state["redis_passwords"]
    urls = acl.service_urls(redis_url, passwords)
    db = database_url.split("://", 1)
    database = (f"{db[0]}://{POSTGRES_USER}:{quote(state['postgres_password'], safe='')}"
                f"@{db[1]}")
    common = {"INTERNAL_TOKEN": state["internal_token"]}
    admin = acl.service_url(redis_url, "default", state["redis_admin_password"])
    ops = (f"user name: {state['ops_user_name']}\n"
           f"password:  {state['ops_password']}\n"
           f"created:   {state['created']}\n")
    return {
        "redis/users.acl": (acl.acl_file_text(passwords, state["redis_admin_password"]),
                            REDIS_UID, 0o600),
        "redis/admin-password": (state["redis_admin_password"] + "\n", REDIS_UID, 0o600),
        "admin.env": (env_text({"REDIS_URL": admin}), 0, 0o600),
        "trip_service.env": (env_text({"REDIS_URL": urls["trip_service"], **common,
                                       "DATABASE_URL": database}),
                             SERVICE_UIDS["trip_service"], 0o600),
        "driver_service.env": (env_text({"REDIS_URL": urls["driver_service"], **common}),
                               SERVICE_UIDS["driver_service"], 0o600),
        "gateway.env": (env_text({"REDIS_URL": urls["gateway"], **common,
                                  "OPS_USER_NAME": state["ops_user_name"],
                                  "OPS_PASSWORD": state["ops_password"]}),
                        SERVICE_UIDS["gateway"], 0o600),
        "postgres/password": (state["postgres_password"] + "\n", 0, 0o600),
        "ops.txt": (ops, 0, 0o600),
    }


def _write(path: Path, text: str, uid: int, mode: int) -> None:
    """Atomically, with its owner and mode set before it has any content."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, mode)
        if os.geteuid() == 0:
            os.fchown(fd, uid, 0 if uid == 0 else (APP_GID if uid in SERVICE_UIDS.values()
                                                   else uid))
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _mkdir(path: Path, uid: int, mode: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if os.geteuid() == 0:
        os.chown(path, uid, uid if uid else 0)


def init(directory: Path, redis_url: str, database_url: str) -> tuple[dict, bool]:
    """Create the secrets once, (re)write the files derived from them.
    Returns the state and whether it was created now."""
    # Traversable by every service user; each file is readable by its owner only.
    _mkdir(directory, 0, 0o755)
    state_path = directory / "state.json"
    created = not state_path.exists()
    if created:
        state = new_state()
        _write(state_path, json.dumps(state, indent=2) + "\n", 0, 0o600)
    else:
        state = json.loads(state_path.read_text())
    _mkdir(directory / "redis", REDIS_UID, 0o700)
    _mkdir(directory / "postgres", 0, 0o700)
    for relative, (text, uid, mode) in files_of(state, redis_url, database_url).items():
        _write(directory / relative, text, uid, mode)
    return state, created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("init", "show"))
    parser.add_argument("--dir", type=Path,
                        default=Path(os.environ.get("CREDENTIALS_DIR", DEFAULT_DIR)))
    parser.add_argument("--redis-url", default=os.environ.get(
        "CREDENTIALS_REDIS_URL", "redis://redis:6379/0"),
        help="the Redis server as the services reach it, without credentials")
    parser.add_argument("--database-url", default=os.environ.get(
        "CREDENTIALS_DATABASE_URL", f"postgresql://postgres:5432/{POSTGRES_DB}"),
        help="the PostgreSQL database as trip_service reaches it, without credentials")
    args = parser.parse_args(argv)
    if args.what == "show":
        ops = args.dir / "ops.txt"
        if not ops.exists():
            print(f"no credentials in {args.dir} yet: run docker compose up first",
                  file=sys.stderr)
            return 1
        sys.stdout.write(ops.read_text())
        return 0
    state, created = init(args.dir, args.redis_url, args.database_url)
    if created:
        # Not the password itself: a log is no place for a secret.
        print("credentials created: the Redis ACL users, the ops account, the services' "
              "token and the PostgreSQL password, in the credentials volume")
        print("the ops account for the dashboard: docker compose run --rm init show")
    else:
        print(f"credentials kept (created {state['created']}); "
              "the ops account: docker compose run --rm init show")
    return 0


if __name__ == "__main__":
    sys.exit(main())
