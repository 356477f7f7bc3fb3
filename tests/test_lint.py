"""The code passes the lint rules chosen in pyproject.toml ([tool.ruff.lint])."""

from __future__ import annotations

import subprocess
import sys

from deploy.processes import ROOT


def test_ruff_finds_nothing():
    run = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
