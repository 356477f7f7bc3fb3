"""`make run`'s launcher: everything comes up, /readyz is 200, Ctrl-C stops all
of it; with REDIS_TOPOLOGY=replicated it runs Redis Cluster with replicas,
supervises the nodes, and `python -m deploy.chaos` fails a primary over."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from common.embedded import EmbeddedRedis, free_port
from deploy import chaos
from deploy.processes import http_json
from deploy.topology import STATE_FILE
from tests.harness import ROOT
from tests.waiting import eventually_blocking

CHROMIUM = Path("/usr/bin/chromium")


class Launcher:
    """`python -m deploy.run` in its own process group; its output read by a
    thread so that a wait for a line never blocks past its deadline."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.ports = {name: free_port() for name in (
            "REDIS_PORT", "GATEWAY_PORT", "TRIP_SERVICE_PORT", "DRIVER_SERVICE_PORT")}
        self.data_dir = tmp_path / "data"
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "REDIS_TOPOLOGY")},
            **{k: str(v) for k, v in self.ports.items()},
            "DATA_DIR": str(self.data_dir),
            "DEMO_TRAFFIC": "0",
            "STATUS_EVERY_S": "1",
            **env,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploy.run"], cwd=ROOT, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_line(self, pattern: str, timeout: float) -> re.Match:
        """The first line from now on (or already read) that matches."""
        regex = re.compile(pattern)
        for line in self.lines:
            if m := regex.search(line):
                return m
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                raise AssertionError(f"no line matching {pattern!r}:\n{''.join(self.lines)}")
            self.lines.append(line)
            if m := regex.search(line):
                return m

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc.stdout.close()


def http(method: str, url: str, token: str | None = None, body: dict | None = None):
    try:
        return http_json(method, url, body, token, timeout=10)
    except urllib.error.HTTPError as exc:
        return exc.code, None


def ops_token_of(launcher: Launcher) -> str:
    """The ops session of the launcher's logged-in link, from the 0600 file it
    writes (the output names no token)."""
    credentials = dict(line.split("=", 1) for line in
                       (launcher.data_dir / "ops-credentials").read_text().splitlines())
    return credentials["DASHBOARD_URL"].split("#token=", 1)[1]


def test_run_starts_the_system_and_ctrl_c_stops_every_process(tmp_path):
    launcher = Launcher(
        tmp_path,
        # Given to the launcher: still the gateway's alone.
        OPS_PASSWORD="a-given-ops-secret-" + os.urandom(6).hex(),
    )
    try:
        link = launcher.wait_line(r"dashboard:\s+(http://\S+?)/\s", 90).group(1)
        launcher.wait_line(r"trips:", 30)  # the first status line came through the ops overview
        assert link.endswith(f":{launcher.ports['GATEWAY_PORT']}")
        with urllib.request.urlopen(f"{link}/readyz", timeout=5) as resp:
            assert resp.status == 200
        children = psutil.Process(launcher.proc.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        for expected in ("trip_service", "driver_service", "gateway", "valkey-server"):
            assert expected in names, names
        # Secrets stay put: the ops account reaches the gateway alone, the
        # output names no password or token, the data is this user's alone.
        data = launcher.data_dir
        credentials = dict(
            line.split("=", 1) for line in (data / "ops-credentials").read_text().splitlines()
        )
        output = "".join(launcher.lines)
        assert credentials["OPS_PASSWORD"] not in output
        assert "#token=" not in output and str(data / "ops-credentials") in output
        assert credentials["OPS_USER_NAME"] != "ops"
        assert f"{link}/#token=" in credentials["DASHBOARD_URL"]
        for child in children:
            cmd = " ".join(child.cmdline())
            if any(f"-m {m}" in cmd for m in ("trip_service", "driver_service", "gateway")):
                env = child.environ()
                assert len(env.get("INTERNAL_TOKEN", "")) >= 32, cmd
                assert ("OPS_PASSWORD" in env) == ("-m gateway" in cmd), cmd
        assert (data / "ops-credentials").stat().st_mode & 0o777 == 0o600
        # Under root the embedded PostgreSQL runs as `nobody`, which must pass
        # through the data folder to its own (search only: no listing, no
        # reading); nothing else is open to others.
        passing = 0o001 if os.geteuid() == 0 else 0
        assert data.stat().st_mode & 0o777 == 0o700 | passing, oct(data.stat().st_mode)
        for folder in (data / "logs", data / "redis"):
            assert folder.stat().st_mode & 0o777 == 0o700, folder
        for path in data.rglob("*"):
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
        assert not (launcher.data_dir / STATE_FILE).exists()  # no cluster, nothing for chaos
        launcher.proc.send_signal(signal.SIGINT)
        assert launcher.proc.wait(30) == 0
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, [c.cmdline() for c in alive]
    finally:
        launcher.stop()


def test_a_port_left_in_time_wait_is_free():
    """An earlier run's connections leave TIME-WAIT sockets on its ports; a server
    binds over them (SO_REUSEADDR), so the launcher must not call them busy."""
    import socket

    from deploy.run import port_free

    port = free_port()
    server = socket.create_server(("127.0.0.1", port))
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = server.accept()
    conn.close()  # the side that closes first keeps the TIME-WAIT
    client.recv(1)
    client.close()
    server.close()
    assert port_free(port)


def test_a_port_the_user_set_is_used_or_the_launcher_stops_and_names_its_holder(tmp_path):
    import socket

    held = socket.create_server(("127.0.0.1", free_port()))
    port = held.getsockname()[1]
    env = {
        **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
        "REDIS_PORT": str(port),
        "DATA_DIR": str(tmp_path / "data"),
        "DEMO_TRAFFIC": "0",
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "deploy.run"], cwd=ROOT, env=env, capture_output=True,
            text=True, timeout=60,
        )
    finally:
        held.close()
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert f"REDIS_PORT={port} is in use by pid {os.getpid()}" in out, out
    assert "instead" not in out, out


# ----------------------------------------------------------- replicated topology
NODE_LINE = r"node 127\.0\.0\.1:(\d+)\s+(primary|replica)\s+shard (\d)"


@pytest.fixture(scope="module")
def replicated(tmp_path_factory):
    launcher = Launcher(tmp_path_factory.mktemp("replicated"), REDIS_TOPOLOGY="replicated")
    try:
        launcher.url = launcher.wait_line(r"dashboard:\s+(http://\S+?)/\s", 180).group(1)
        launcher.token = ops_token_of(launcher)
        yield launcher
        launcher.proc.send_signal(signal.SIGINT)
        assert launcher.proc.wait(60) == 0
        assert not (launcher.data_dir / STATE_FILE).exists()
    finally:
        launcher.stop()


def topology(launcher: Launcher) -> dict:
    status, body = http("GET", f"{launcher.url}/v1/ops/topology", launcher.token)
    assert status == 200
    return body


def sf_shard(body: dict) -> dict | None:
    return next((s for s in body["shards"] if "sf" in s["regions"]), None)


def run_chaos(launcher: Launcher, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deploy.chaos", *args], cwd=ROOT, env=launcher.env,
        capture_output=True, text=True, timeout=60,
    )


@pytest.mark.timeout(300)
def test_replicated_topology_fails_over_and_the_supervisor_restarts_the_node(replicated):
    # Each node printed: 3 shards of a primary and 2 replicas.
    nodes = [re.search(NODE_LINE, line).groups() for line in replicated.lines
             if re.search(NODE_LINE, line)]
    assert sorted((role, shard) for _, role, shard in nodes) == sorted(
        [("primary", s) for s in "012"] + [("replica", s) for s in "012" for _ in range(2)]
    ), replicated.lines
    state_file = replicated.data_dir / STATE_FILE
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600
    # The services run with WAIT_REPLICAS=1.
    children = psutil.Process(replicated.proc.pid).children(recursive=True)
    gateway = next(c for c in children if "gateway" in " ".join(c.cmdline()))
    assert gateway.environ().get("WAIT_REPLICAS") == "1"

    # The ops API shows the cluster: every replica linked to its primary.
    def settled():
        body = topology(replicated)
        ok = len(body["shards"]) == 3 and all(
            s["primary"] and len(s["nodes"]) == 3 and all(
                n["role"] == "replica" and n["link"] == "up" and n["follows"] == s["primary"]
                and n["lag_bytes"] is not None
                for n in s["nodes"] if n["address"] != s["primary"])
            for s in body["shards"])
        return body if ok else None

    before = eventually_blocking(settled, timeout=30, interval=0.2,
                                 message="the topology did not show 3 shards of 1+2 nodes")
    assert before["mode"] == "cluster"
    old = sf_shard(before)["primary"]
    failovers_before = len(before["failovers"])

    run = run_chaos(replicated, "kill-primary", "sf")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"killed the primary {old}" in run.stdout, run.stdout
    new = re.search(r"(127\.0\.0\.1:\d+) is the primary now", run.stdout).group(1)
    assert new != old

    # The supervisor restarts the node once the replica took over ...
    replicated.wait_line(rf"redis node {re.escape(old)} restarted .* primary is {re.escape(new)}", 60)

    # ... it rejoins as a replica of the new primary, and the gateway recorded the failover.
    def rejoined():
        body = topology(replicated)
        shard = sf_shard(body)
        node = next((n for n in shard["nodes"] if n["address"] == old), None)
        if shard["primary"] == new and node and node["role"] == "replica" and \
                node["follows"] == new and node["link"] == "up" and node["reachable"]:
            return body
        return None

    after = eventually_blocking(rejoined, timeout=60, interval=0.2,
                                message=f"{old} did not rejoin as a replica of {new}")
    assert len(after["failovers"]) == failovers_before + 1
    failover = after["failovers"][0]
    assert (failover["failed"], failover["promoted"], failover["regions"]) == (old, new, ["sf"])
    assert 0 < failover["no_primary_s"] < 30

    # The system carries on on the new primary: a write through the gateway.
    body = {"user_name": f"fo{os.getpid()}", "password": "failover-password-1",
            "first_name": "Fail", "last_name": "Over", "email": f"fo{os.getpid()}@example.com",
            "age": 30}
    status = eventually_blocking(
        lambda: http("POST", f"{replicated.url}/v1/riders", body=body)[0] in (201, 409) or None,
        timeout=30, interval=0.2, message="no sign-up after the failover")
    assert status


@pytest.mark.timeout(240)
def test_the_dashboard_shows_the_shards_and_each_failover(replicated):
    from playwright.sync_api import sync_playwright

    from tests.demo.test_dashboard_browser import CHROMIUM_ARGS
    from tests.demo.test_dashboard_browser import wait_for as page_wait_for

    assert CHROMIUM.exists(), "the browser tests need Debian's chromium at /usr/bin/chromium"

    if not topology(replicated)["failovers"]:
        run = run_chaos(replicated, "kill-primary")
        assert run.returncode == 0, run.stdout + run.stderr
        eventually_blocking(lambda: topology(replicated)["failovers"], timeout=30, interval=0.2,
                            message="no failover recorded")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{replicated.url}/#token={replicated.token}")
            page_wait_for(
                page,
                "(() => { const t = document.getElementById('topology').dataset;"
                " return t.mode === 'cluster' && t.shards === '3' && Number(t.failovers) > 0; })()",
            )
            assert page.locator("#topology-table tr.node").count() == 9
            assert page.locator("#topology-table tr.node[data-role=primary]").count() == 3
            assert "3 shards, 9 nodes" in page.locator("#topology-summary").inner_text()
            page.locator("#feed li[data-type='redis.failover']").first.wait_for(timeout=10_000)
            assert "no primary for" in page.locator("#failovers").inner_text()
            assert not errors, errors
        finally:
            browser.close()


# ----------------------------------------------------------- chaos refuses
def chaos_run(monkeypatch, capsys, data_dir: Path, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    code = chaos.main(list(args))
    return code, capsys.readouterr().out


def write_record(path: Path, state: dict, mode: int = 0o600) -> None:
    path.write_text(json.dumps(state))
    path.chmod(mode)


def test_chaos_refuses_a_redis_the_launcher_did_not_start(tmp_path, monkeypatch, capsys):
    # No launcher has run here.
    code, out = chaos_run(monkeypatch, capsys, tmp_path, "kill-primary")
    assert code == 2 and "refused: no record of embedded nodes" in out, out

    server = EmbeddedRedis(tmp_path / "redis", free_port()).start()
    # Something that calls itself the launcher, which did not start the server.
    impostor = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "deploy.run"],
        stdin=subprocess.PIPE,
    )
    try:
        record = {
            "launcher_pid": impostor.pid, "topology": "replicated",
            "admin_password_file": None, "slot_ranges": [[0, 16383]],
            "nodes": [{"port": server.port, "pid": server.process.pid,
                       "data_dir": str(server.data_dir), "shard": 0}],
        }
        path = tmp_path / STATE_FILE
        # A record others could write is refused before anything is read from it.
        write_record(path, record, 0o644)
        code, out = chaos_run(monkeypatch, capsys, tmp_path, "kill-primary")
        assert code == 2 and "is not private to this user" in out, out

        write_record(path, {**record, "launcher_pid": os.getpid()})
        code, out = chaos_run(monkeypatch, capsys, tmp_path, "freeze-primary", "--seconds", "1")
        assert code == 2 and "is not the launcher" in out, out

        # A one-server Redis: not a cluster, nothing to fail over.
        write_record(path, record)
        code, out = chaos_run(monkeypatch, capsys, tmp_path, "kill-primary")
        assert code == 2 and "is not a Redis Cluster node" in out, out

        # Even asked about a node by the record's own word, the process must be
        # the launcher's child: the check_node rule, on the same server.
        with pytest.raises(chaos.Refused, match="not a child of the launcher"):
            chaos.check_node(record, record["nodes"][0], impostor.pid)
        assert server.alive() and not server.frozen
        assert psutil.Process(server.process.pid).status() != psutil.STATUS_STOPPED
    finally:
        impostor.communicate(b"")
        server.stop()
