"""The embedded cold store: a local PostgreSQL 16 from the PyPI package `pgserver`.

`pgserver` ships the server binaries (initdb, postgres); this module runs them
as a child process the way `common.embedded` runs Valkey, with the data under
a project folder and `fsync` on, so a `kill -9` loses nothing committed.

PostgreSQL refuses to run as root. Started by root (a container, CI), the
server runs as the unprivileged `nobody` user, which then owns the data folder
(0700), and the folders above it get search permission for others where they
lack it; otherwise it runs as the caller. No system user is created.

The superuser `postgres` and the service's own role (`trip_service`, owner of
the database `trips`) get passwords made up on first start and kept in
`<data>.credentials` (0600, the caller's), so a restart finds them again. The
server listens on 127.0.0.1 only, with scram-sha-256 password authentication.

    python -m common.embedded_pg --dir .data/postgres --port 5432   # in the foreground
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import importlib.util
import json
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .embedded import free_port, serve_until_signalled

# The unprivileged account the server runs as when started by root.
RUN_AS_WHEN_ROOT = "nobody"
DATABASE = "trips"
ROLE = "trip_service"


class EmbeddedPostgresError(RuntimeError):
    pass


def bin_dir() -> Path:
    """The binaries inside the installed package, found without importing it
    (its import sets up a wrapper that this module does not use)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "PostgreSQL is not installed: install the project with `make install` "
            "(the pgserver package), or set DATABASE_URL to a PostgreSQL server."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise EmbeddedPostgresError(f"no postgres binary in {path}")
    if os.geteuid() == 0 and not _others_reach(path):
        # PostgreSQL runs as `nobody` under root and must reach its binaries:
        # a project under /root (0700) hides them. A copy others may read,
        # made once per installation, rather than opening /root.
        return _shared_copy(path.parent) / "bin"
    return path


def _others_reach(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents])


def _shared_copy(install: Path) -> Path:
    """`install` (pgserver's PostgreSQL tree) copied to a folder every user may
    read and run, keyed by where it comes from and when it was installed; its
    shared libraries beside it as in site-packages (the binaries find them by
    a relative rpath, `$ORIGIN/../../../pgserver.libs`). Returns the copy of
    `install`."""
    key = hashlib.sha256(f"{install}:{install.stat().st_mtime_ns}".encode()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"ridehail-pginstall-{key}"
    copied = target / install.parent.name / install.name
    if (copied / "bin" / "postgres").exists():
        return copied
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    try:
        tree = staging / "tree"
        shutil.copytree(install, tree / install.parent.name / install.name, symlinks=True)
        libs = install.parent.parent / f"{install.parent.name}.libs"
        if libs.is_dir():
            shutil.copytree(libs, tree / libs.name, symlinks=True)
        for root, dirs, _files in os.walk(tree):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        os.chmod(tree, 0o755)
        try:
            os.rename(tree, target)
        except OSError:
            if not (copied / "bin" / "postgres").exists():  # not a concurrent copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return copied
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=target.parent))
    try:
        shutil.copytree(install, staging / "tree", symlinks=True)
        for root, dirs, _files in os.walk(staging / "tree"):
            for d in dirs:
                os.chmod(os.path.join(root, d), 0o755)
        os.chmod(staging / "tree", 0o755)
        try:
            os.rename(staging / "tree", target)
        except OSError:
            if not (target / "bin" / "postgres").exists():  # not a concurrent copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    port: int = 5432
    process: subprocess.Popen | None = None

    @property
    def credentials_file(self) -> Path:
        return Path(str(self.data_dir) + ".credentials")

    def _credentials(self) -> dict[str, str]:
        path = self.credentials_file
        if path.exists():
            return json.loads(path.read_text())
        creds = {"postgres": secrets.token_urlsafe(24), ROLE: secrets.token_urlsafe(24)}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(creds, f)
        return creds

    @property
    def url(self) -> str:
        """The service's own role on its own database."""
        return f"postgresql://{ROLE}:{self._credentials()[ROLE]}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres:{self._credentials()['postgres']}@127.0.0.1:{self.port}/postgres"

    def _user(self) -> tuple[int, int] | None:
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(RUN_AS_WHEN_ROOT)
        except KeyError:
            raise EmbeddedPostgresError(
                f"PostgreSQL refuses to run as root and there is no {RUN_AS_WHEN_ROOT!r} user "
                "to run it as: run as another user, or set DATABASE_URL"
            ) from None
        return entry.pw_uid, entry.pw_gid

    def _run_kwargs(self) -> dict:
        user = self._user()
        return {} if user is None else {"user": user[0], "group": user[1], "extra_groups": []}

    def _own(self, path: Path, mode: int) -> None:
        user = self._user()
        if user is not None:
            os.chown(path, *user)
        path.chmod(mode)

    def _make_reachable(self) -> None:
        """The unprivileged user must be able to reach the data folder: a
        folder above it that others cannot search gets search permission for
        them (o+x: pass through, not list or read), as pgserver's own wrapper
        does (more widely, g+rx,o+rx); said on stderr."""
        if self._user() is None:
            return
        for parent in self.data_dir.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                print(f"embedded_pg: {parent}: adding search permission for others (o+x), "
                      f"so that PostgreSQL, running as {RUN_AS_WHEN_ROOT!r}, reaches its data",
                      file=sys.stderr)
                parent.chmod(mode | stat.S_IXOTH)

    def initdb(self) -> None:
        """A new cluster with the superuser's password (scram-sha-256)."""
        data = self.data_dir
        data.mkdir(parents=True, exist_ok=True)
        self._own(data, 0o700)
        pwfile = data.parent / f".{data.name}.initpw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self._credentials()["postgres"] + "\n")
        self._own(pwfile, 0o600)
        try:
            done = subprocess.run(
                [str(bin_dir() / "initdb"), "-D", str(data), "-U", "postgres",
                 "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                 "--locale=C"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                **self._run_kwargs(),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            raise EmbeddedPostgresError(f"initdb failed: {done.stderr.decode(errors='replace')}")

    def command(self) -> list[str]:
        return [
            str(bin_dir() / "postgres"), "-D", str(self.data_dir),
            "-h", "127.0.0.1", "-p", str(self.port),
            # The socket next to the data, not /var/run (which root owns).
            "-k", str(self.data_dir),
            # The server's own user alone may use the socket (its folder is
            # closed to others anyway): clients connect over TCP with a password.
            "-c", "unix_socket_permissions=0700",
            "-c", "fsync=on", "-c", "synchronous_commit=on",
            "-c", "max_connections=200",
            "-c", "logging_collector=off",
        ]

    def start(self, timeout: float = 30.0) -> "EmbeddedPostgres":
        self.data_dir = Path(self.data_dir).resolve()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._make_reachable()
        if not (self.data_dir / "PG_VERSION").exists():
            self.initdb()
        # A server killed with -9 leaves postmaster.pid behind; postgres
        # itself checks that its pid is gone and starts anyway.
        log = open(self.data_dir.parent / f"{self.data_dir.name}.log", "ab")
        try:
            self.process = subprocess.Popen(
                self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, **self._run_kwargs(),
            )
        finally:
            log.close()
        self.wait_ready(timeout)
        self.ensure_database()
        return self

    def _sql(self, url: str, statements: list[str]) -> list:
        import asyncio

        import asyncpg

        async def run() -> list:
            conn = await asyncpg.connect(url, timeout=2)
            try:
                return [await conn.fetch(s) for s in statements]
            finally:
                await conn.close()

        # Its own thread and loop: callers may be inside a running loop (tests).
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(lambda: asyncio.run(run())).result()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            if self.process is not None and self.process.poll() is not None:
                log = self.data_dir.parent / f"{self.data_dir.name}.log"
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise EmbeddedPostgresError(
                    f"postgres exited with {self.process.returncode}:\n{tail}"
                )
            try:
                self._sql(self.admin_url, ["SELECT 1"])
                return
            except Exception as exc:  # starting up, recovering: not yet
                last = exc
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(f"postgres on port {self.port} did not answer: {last!r}")
            time.sleep(0.05)

    def ensure_database(self) -> None:
        """The service's role and its database (owner), once."""
        password = self._credentials()[ROLE]
        rows = self._sql(self.admin_url, [
            f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'",
            f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'",
        ])
        statements = []
        if not rows[0]:
            # The password is ours (token_urlsafe: no quote can be in it).
            statements.append(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{password}'")
        if not rows[1]:
            statements.append(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")
        if statements:
            self._sql(self.admin_url, statements)

    def kill(self) -> None:
        """kill -9 of the postmaster: what a crash looks like (its backends
        exit when they notice their parent is gone)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGINT: fast shutdown (rolls back open transactions, checkpoints)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=".data/postgres")
    parser.add_argument("--port", type=int, default=5432)
    args = parser.parse_args(argv)
    server = EmbeddedPostgres(Path(args.dir), args.port or free_port()).start()
    print(f"postgres on 127.0.0.1:{server.port} (data in {server.data_dir}); "
          f"credentials in {server.credentials_file}", flush=True)
    return serve_until_signalled(server)


if __name__ == "__main__":
    sys.exit(main())
