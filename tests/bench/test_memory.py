"""`python -m bench.memory` (scenario 9's measure) runs and reports every
part, and the parts account for the used_memory delta. Figures are printed by
the benchmark, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys

from deploy.processes import ROOT


def test_memory_breakdown_reports_every_part():
    run = subprocess.run(
        [sys.executable, "-m", "bench.memory", "200", "200", "--json"], cwd=ROOT,
        capture_output=True, text=True, timeout=100,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = json.loads(run.stdout)
    drivers, trips = result["drivers"], result["trips"]
    assert drivers["drivers"] == 200 and trips["trips"] == 200
    assert set(drivers["parts_b"]) >= {"document", "geo_index", "stream", "keyspace_and_other"}
    assert set(trips["parts_b"]) >= {"document", "event_list", "ranking", "pickups_geo",
                                      "expiry", "rider_active", "stream", "keyspace_and_other"}
    for m in (drivers, trips):
        assert sum(m["parts_b"].values()) == m["used_memory_b"] > 0
        assert m["parts_b"]["document"] > 0 and m["parts_b"]["stream"] > 0
    assert trips["parts_b"]["event_list"] > 0
