"""The benchmark harness runs end to end (BENCH_QUICK=1): every scenario is in
results.json, with no errors. Speed is reported by `make bench`, never
asserted here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from deploy.processes import ROOT

# 10 (overload) needs wrk to count each request's own latency.
SCENARIOS = set(range(1, 10)) | ({10} if shutil.which("wrk") else set())


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_quick_run_reports_every_scenario_without_errors(tmp_path):
    env = {**os.environ, "BENCH_QUICK": "1", "BENCH_OUT": str(tmp_path)}
    env.pop("REDIS_URL", None)
    run = subprocess.run(
        [sys.executable, "-m", "bench"], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=840,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    report = json.loads((tmp_path / "results.json").read_text())
    rows = report["scenarios"]
    assert report["meta"]["complete"] is True
    assert {r["number"] for r in rows} == SCENARIOS
    for row in rows:
        assert set(row) >= {"scenario", "requests_per_s", "ratio", "p50_ms", "p99_ms", "errors"}
    # With what went wrong where a scenario says (the dispatch flow does).
    assert [(r["scenario"], r["errors"], (r.get("extra") or {}).get("errors_by_kind"))
            for r in rows if r["errors"]] == []
    # Dispatch open-loop: a row per rate requested, each with its latencies.
    open_loop = [r for r in rows if r["scenario"].startswith("dispatch open-loop, ")]
    assert len(open_loop) >= 2
    for row in open_loop:
        extra = row["extra"]
        assert extra["requested"] == extra["scheduled"] > 0
        assert extra["offered"] == extra["assigned"] == extra["completed"] == extra["requested"]
        assert row["p99_ms"] is not None and extra["request_to_assigned_ms"]["p99"] is not None
    assert any(r["scenario"].startswith("dispatch open-loop (") and "highest rate" in r["scenario"]
               for r in rows)
    assert (tmp_path / "chart.png").stat().st_size > 0
    # The load generator is named in the output.
    assert "load generator:" in run.stdout
