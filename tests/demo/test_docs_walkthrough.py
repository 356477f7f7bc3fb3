"""docs/api.md's "Your first ride" runs as written: its shell blocks, in order,
against a live system (a rider and a driver from sign-up to rating)."""

from __future__ import annotations

import re
import shutil
import subprocess

from tests.harness import ROOT

DOC = ROOT / "docs" / "api.md"


def walkthrough() -> str:
    text = DOC.read_text()
    section = text.split("\n## Your first ride\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    assert len(blocks) >= 6, "the walkthrough lost its blocks"
    return "\n".join(blocks)


def test_your_first_ride_runs_as_written(demo_system):
    assert shutil.which("curl"), "the walkthrough uses curl: install it (Debian: apt-get install curl)"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", walkthrough()],
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "GATEWAY": demo_system.url, "HOME": "/tmp"},
        capture_output=True, text=True, timeout=120,
    )
    out = done.stdout
    assert done.returncode == 0, f"{done.stderr}\n{out}"
    # The estimates, the trip's way from requested to completed, the rating,
    # the rider's stream ending with the completion.
    for expected in ('"estimates"', '"status":"requested"', '"status":"assigned"',
                     '"status":"arrived"', '"status":"in_progress"', '"status":"completed"',
                     '"stars":5', "event: trip.completed"):
        assert expected in out, f"{expected} missing from:\n{out}"
    assert "trip.offered" not in out  # the rider's view: no offers to drivers
