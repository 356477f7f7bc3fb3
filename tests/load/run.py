"""`make load`: a headless locust run with CSV and HTML reports in reports/.

Against LOAD_HOST when it is set; otherwise the target starts the whole
system itself with the local launcher (`python -m deploy.run`, DEMO_TRAFFIC=0,
a fresh data folder), runs the load against its gateway and stops it.

Settings (environment): LOAD_HOST, LOAD_USERS (50), LOAD_SPAWN_RATE (5),
LOAD_TIME (60s), LOAD_REPORT (reports/load: the prefix of the files),
LOAD_KEEP_DATA (0: the launcher's data folder is removed afterwards);
and those of the locustfile (LOAD_OFFER_WAIT_S, LOAD_MAX_TRIP_WAIT_S).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = ROOT / "tests" / "load" / "locustfile.py"


def say(message: str) -> None:
    print(f"[load] {message}", flush=True)


def locust_command(
    host: str, users: int, spawn_rate: float, run_time: str, report: Path
) -> list[str]:
    return [
        sys.executable, "-m", "locust",
        "-f", str(LOCUSTFILE),
        "--host", host,
        "--headless",
        "--users", str(users),
        "--spawn-rate", str(spawn_rate),
        "--run-time", run_time,
        "--stop-timeout", "10",
        "--csv", str(report),
        "--csv-full-history",
        "--html", str(report.with_suffix(".html")),
        "--only-summary",
    ]


def start_system(data_dir: Path) -> tuple[subprocess.Popen, str]:
    """The launcher without demo traffic; returns it and the gateway URL."""
    env = {
        **os.environ,
        "DEMO_TRAFFIC": "0",
        "DATA_DIR": str(data_dir),
        "STATUS_EVERY_S": os.environ.get("STATUS_EVERY_S", "15"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.run"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        print(line, end="", flush=True)
        m = re.search(r"dashboard:\s+(http://\S+?)/\s", line)
        if m:
            # Keep relaying the launcher's output (status lines) while the load runs.
            threading.Thread(target=_relay, args=(proc,), daemon=True).start()
            return proc, m.group(1)
    stop_system(proc)
    raise SystemExit("[load] the system did not start; see the launcher's output above")


def _relay(proc: subprocess.Popen) -> None:
    for line in proc.stdout:
        print(line, end="", flush=True)


def stop_system(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def main() -> int:
    users = int(os.environ.get("LOAD_USERS", "50"))
    spawn_rate = float(os.environ.get("LOAD_SPAWN_RATE", "5"))
    run_time = os.environ.get("LOAD_TIME", "60s")
    report = ROOT / os.environ.get("LOAD_REPORT", "reports/load")
    report.parent.mkdir(parents=True, exist_ok=True)
    host = os.environ.get("LOAD_HOST", "").rstrip("/")
    system = None
    data_dir = None
    try:
        if not host:
            (ROOT / ".data").mkdir(exist_ok=True)
            data_dir = Path(tempfile.mkdtemp(prefix="load-", dir=ROOT / ".data"))
            say(f"starting the system (DEMO_TRAFFIC=0, data in {data_dir}) ...")
            system, host = start_system(data_dir)
        say(f"locust: {users} users, spawn rate {spawn_rate}/s, for {run_time}, against {host}")
        code = subprocess.call(
            locust_command(host, users, spawn_rate, run_time, report), cwd=ROOT
        )
        say(f"reports: {report}_stats.csv, {report}_stats_history.csv, "
            f"{report}_failures.csv, {report.with_suffix('.html')}")
        say("locust exit code %d (%s)" % (code, "no failures" if code == 0 else "failures"))
        return code
    finally:
        if system is not None:
            say("stopping the system ...")
            stop_system(system)
        if data_dir is not None and os.environ.get("LOAD_KEEP_DATA", "0") != "1":
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
