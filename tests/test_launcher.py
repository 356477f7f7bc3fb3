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
