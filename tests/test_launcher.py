"""`make run`'s launcher: everything comes up, /readyz is 200, Ctrl-C stops all of it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import psutil

from common.embedded import free_port
from tests.harness import ROOT


def test_run_starts_the_system_and_ctrl_c_stops_every_process(tmp_path):
    ports = {name: free_port() for name in ("REDIS_PORT", "GATEWAY_PORT", "TRIP_SERVICE_PORT",
                                             "DRIVER_SERVICE_PORT")}
    env = {
        **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
        **{k: str(v) for k, v in ports.items()},
        "DATA_DIR": str(tmp_path / "data"),
        "DEMO_TRAFFIC": "0",
        "STATUS_EVERY_S": "1",
        # Given to the launcher: still the gateway's alone.
        "OPS_PASSWORD": "a-given-ops-secret-" + os.urandom(6).hex(),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    link = None
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(r"dashboard:\s+(http://\S+?)/\s", line)
            if m:
                link = m.group(1)
            if link and "trips:" in line:
                break  # the first status line came through the ops overview
        assert link, "".join(lines)
        assert link.endswith(f":{ports['GATEWAY_PORT']}")
        with urllib.request.urlopen(f"{link}/readyz", timeout=5) as resp:
            assert resp.status == 200
        children = psutil.Process(proc.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        for expected in ("trip_service", "driver_service", "gateway", "valkey-server"):
            assert expected in names, names
        # Secrets stay put: the ops account reaches the gateway alone, the
        # output names no password or token, the data is this user's alone.
        data = tmp_path / "data"
        credentials = dict(
            line.split("=", 1) for line in (data / "ops-credentials").read_text().splitlines()
        )
        output = "".join(lines)
        assert credentials["OPS_PASSWORD"] not in output
        assert "#token=" not in output and str(data / "ops-credentials") in output
        assert credentials["OPS_USER_NAME"] != "ops"
        assert f"{link}/#token=" in credentials["DASHBOARD_URL"]
        for child in children:
            cmd = " ".join(child.cmdline())
            if any(m in cmd for m in ("trip_service", "driver_service", "gateway")):
                env = child.environ()
                assert len(env.get("INTERNAL_TOKEN", "")) >= 32, cmd
                assert ("OPS_PASSWORD" in env) == ("-m gateway" in cmd), cmd
        assert (data / "ops-credentials").stat().st_mode & 0o777 == 0o600
        for folder in (data, data / "logs", data / "redis"):
            assert folder.stat().st_mode & 0o777 == 0o700, folder
        for path in data.rglob("*"):
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, [c.cmdline() for c in alive]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        proc.stdout.close()


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
