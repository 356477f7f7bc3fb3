"""Known vulnerabilities of the installed dependencies (pip-audit).

pip-audit asks its vulnerability service about every installed distribution
(by default PyPI's JSON API, `GET /pypi/<name>/<version>/json`, whose answer
lists the known vulnerabilities of that release). The test fails on any
vulnerability found.

A dependency pip-audit could not ask about is not a pass: pip-audit itself
then still prints "No known vulnerabilities found" and exits 0. When any
dependency went unaudited the test is skipped and says precisely why (the
service's answer), so a green run means every dependency was checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.proofs.support import record_figures

AUDIT_TIMEOUT_S = 300
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
UNREACHABLE = ("SSLError", "ConnectionError", "ConnectTimeout", "ReadTimeout", "NameResolution")


def _pip_audit() -> Path:
    return Path(sys.executable).parent / "pip-audit"


def _probe(url: str) -> str:
    """What the service answers for one release, for the skip reason."""
    try:
        with urllib.request.urlopen(url, timeout=15) as resp:
            return f"{url} answered {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except OSError as exc:
        return f"{url} could not be reached ({exc})"


def test_no_installed_dependency_has_a_known_vulnerability(tmp_path):
    out = tmp_path / "audit.json"
    env = dict(os.environ)
    # Trust the machine's CA bundle (as pip here does), not only certifi's.
    if Path(SYSTEM_CA_BUNDLE).exists():
        env.setdefault("REQUESTS_CA_BUNDLE", SYSTEM_CA_BUNDLE)
    run = subprocess.run(
        [str(_pip_audit()), "--local", "--skip-editable", "--format", "json",
         "--progress-spinner", "off", "--output", str(out)],
        capture_output=True, text=True, timeout=AUDIT_TIMEOUT_S, env=env,
    )
    if not out.exists() and any(e in run.stderr for e in UNREACHABLE):
        # Nothing was audited: not a pass, and not a finding either.
        last = run.stderr.strip().splitlines()[-1][:400]
        pytest.skip(f"pip-audit could not reach its vulnerability service: {last}")
    assert out.exists(), f"pip-audit wrote nothing (exit {run.returncode}): {run.stderr[-2000:]}"
    report = json.loads(out.read_text())
    deps = report["dependencies"]
    audited = [d for d in deps if "vulns" in d]
    skipped = [d for d in deps if "skip_reason" in d]
    vulnerable = [d for d in audited if d["vulns"]]
    record_figures("pip_audit", {
        "dependencies": len(deps),
        "audited": len(audited),
        "not_audited": len(skipped),
        "vulnerable": [f"{d['name']} {d['version']}: {[v['id'] for v in d['vulns']]}"
                       for d in vulnerable],
    })
    assert not vulnerable, "\n".join(
        f"{d['name']} {d['version']}: " + ", ".join(
            f"{v['id']} (fixed in {', '.join(v.get('fix_versions') or ['?'])})" for v in d["vulns"]
        )
        for d in vulnerable
    )
    if skipped:
        sample = next((d for d in skipped if d["name"] == "aiohttp"), skipped[0])
        version = sample["skip_reason"].rsplit("(", 1)[-1].rstrip(")")
        release = f"https://pypi.org/pypi/{sample['name']}/{version}/json"
        pytest.skip(
            f"pip-audit could audit {len(audited)} of {len(deps)} dependencies; "
            f"{len(skipped)} not audited, e.g. {sample['name']}: {sample['skip_reason']}. "
            f"The vulnerability service: "
            f"{_probe(release)}"
        )
    assert audited, "pip-audit found no dependency to audit"
