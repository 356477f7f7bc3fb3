"""A short headless locust run of tests/load/locustfile.py against a real
system: every journey goes through and nothing fails."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

from tests.harness import ROOT
from tests.load.report import chart

LOCUSTFILE = ROOT / "tests" / "load" / "locustfile.py"


def read_stats(path) -> dict[str, dict]:
    with open(path, newline="") as f:
        return {f"{row['Type']} {row['Name']}".strip(): row for row in csv.DictReader(f)}


def test_a_short_locust_run_has_no_failures(demo_system, tmp_path):
    report = tmp_path / "load"
    # Half the riders change their plans, so a short run surely has some.
    env = {**os.environ, "LOAD_OFFER_WAIT_S": "2", "LOAD_MAX_TRIP_WAIT_S": "20",
           "LOAD_CANCEL_SHARE": "0.5"}
    result = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--host", demo_system.url,
         "--headless", "--users", "8", "--spawn-rate", "4", "--run-time", "25s",
         "--stop-timeout", "15", "--csv", str(report), "--csv-full-history",
         "--html", str(tmp_path / "load.html"),
         "--only-summary", "--loglevel", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    output = result.stdout[-4000:] + result.stderr[-4000:]
    stats = read_stats(f"{report}_stats.csv")
    total = stats["Aggregated"]
    assert int(total["Request Count"]) > 50, output
    assert int(total["Failure Count"]) == 0, output
    failures = (tmp_path / "load_failures.csv").read_text().strip().splitlines()
    assert len(failures) <= 1, "\n".join(failures)  # the header only
    # Both journeys ran: riders requested and followed trips, drivers drove them.
    for name in ("POST /v1/trips [request]", "GET /v1/trips/{id}", "PUT /v1/driver/location",
                 "POST /v1/driver/offers/{id}/accept", "POST /v1/trips/{id}/complete"):
        assert int(stats[name]["Request Count"]) > 0, (name, output)
    assigned = stats["TRIP request-to-assigned"]
    assert int(assigned["Request Count"]) > 0 and float(assigned["Median Response Time"]) > 0
    assert result.returncode == 0, output
    assert (tmp_path / "load.html").stat().st_size > 1000
    # Riders cancel as documented: soon after the request, whatever the state.
    assert int(stats["POST /v1/trips/{id}/cancel"]["Request Count"]) > 0, output
    # The latency chart leaves the long poll out and shows request-to-assigned.
    path, names = chart(report)
    assert path.stat().st_size > 10_000
    # It draws the slowest routes (at most ten) and the request-to-assigned
    # metric, each a route the run called.
    routes = [n for n in names if "request-to-assigned" not in n]
    assert 1 <= len(routes) <= 10 and "TRIP request-to-assigned" in names, names
    assert all(n in stats for n in names), (names, sorted(stats))
    assert not any("long-poll" in n for n in names), names
