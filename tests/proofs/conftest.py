"""The proofs: promises of DESIGN.md and API.md, each shown by a test that
could fail. Their figures are printed at the end of the run and written to
reports/proofs.json (see docs/reliability.md)."""

from __future__ import annotations

import json

from tests.proofs.support import REPORT, figures


def pytest_sessionstart(session):
    # Figures of this run only.
    if REPORT.exists():
        REPORT.unlink()


def pytest_terminal_summary(terminalreporter):
    found = figures()
    if not found:
        return
    terminalreporter.section("proof figures")
    for name, values in sorted(found.items()):
        shown = {k: v for k, v in values.items() if k != "rounds"}
        terminalreporter.write_line(f"{name}: {json.dumps(shown, sort_keys=True)}")
    terminalreporter.write_line(f"(all figures: {REPORT})")
