"""Known vulnerabilities of the installed dependencies.

First path, pip-audit: it asks its vulnerability service about every
installed distribution (by default PyPI's per-release JSON,
`GET /pypi/<name>/<version>/json`, whose answer lists the known
vulnerabilities of that release). Any vulnerability found fails the test.

A dependency pip-audit could not ask about is not a pass: pip-audit itself
then still prints "No known vulnerabilities found" and exits 0. So when
pip-audit could not audit every dependency (service unreachable, or releases
it could not look up), the test falls back to the second path.

Second path, PyPI's project JSON (`GET /pypi/<name>/json`): its top-level
`vulnerabilities` lists the known vulnerabilities of the project's latest
release only (`info.version`). So a dependency is audited this way only when
the installed version is that latest release; then every entry not withdrawn
applies to it and fails the test. A dependency at another version, or whose
project could not be fetched, is not audited.

When any dependency went unaudited the test is skipped and says precisely
why, so a green run means every dependency was checked.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from tests.proofs.support import record_figures

AUDIT_TIMEOUT_S = 300
FETCH_TIMEOUT_S = 15
FETCH_WORKERS = 16
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
UNREACHABLE = ("SSLError", "ConnectionError", "ConnectTimeout", "ReadTimeout", "NameResolution")
PROJECT = "ridehail"


def _pip_audit() -> Path:
    return Path(sys.executable).parent / "pip-audit"


def _probe(url: str) -> str:
    """What the service answers for one release, for the skip reason."""
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as resp:
            return f"{url} answered {resp.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except OSError as exc:
        return f"{url} could not be reached ({exc})"


# --- first path: pip-audit ----------------------------------------------------
def _run_pip_audit(tmp_path: Path) -> tuple[dict | None, str]:
    """pip-audit's report (None if it reached no service) and, when it could
    not audit everything, why."""
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
        last = run.stderr.strip().splitlines()[-1][:400]
        return None, f"pip-audit could not reach its vulnerability service: {last}"
    assert out.exists(), f"pip-audit wrote nothing (exit {run.returncode}): {run.stderr[-2000:]}"
    report = json.loads(out.read_text())
    skipped = [d for d in report["dependencies"] if "skip_reason" in d]
    if not skipped:
        return report, ""
    sample = next((d for d in skipped if d["name"] == "aiohttp"), skipped[0])
    version = sample["skip_reason"].rsplit("(", 1)[-1].rstrip(")")
    release = f"https://pypi.org/pypi/{sample['name']}/{version}/json"
    return report, (f"pip-audit left {len(skipped)} of {len(report['dependencies'])} "
                    f"dependencies unaudited, e.g. {sample['name']}: {_probe(release)}")


def _check_pip_audit(report: dict) -> None:
    """Fail on any vulnerability pip-audit found."""
    deps = report["dependencies"]
    audited = [d for d in deps if "vulns" in d]
    vulnerable = [d for d in audited if d["vulns"]]
    record_figures("pip_audit", {
        "service": "pip-audit",
        "dependencies": len(deps),
        "audited": len(audited),
        "not_audited": len(deps) - len(audited),
        "vulnerable": [f"{d['name']} {d['version']}: {[v['id'] for v in d['vulns']]}"
                       for d in vulnerable],
    })
    assert not vulnerable, "\n".join(
        f"{d['name']} {d['version']}: " + ", ".join(
            f"{v['id']} (fixed in {', '.join(v.get('fix_versions') or ['?'])})" for v in d["vulns"]
        )
        for d in vulnerable
    )


# --- second path: PyPI's project JSON -----------------------------------------
@dataclass
class Audit:
    name: str
    version: str
    vulns: list[dict] = field(default_factory=list)
    unaudited: str = ""  # why it could not be audited; empty when audited


def _installed() -> dict[str, str]:
    """Installed distributions by normalized name (first on sys.path wins, as
    for imports), without the project itself and editable installs."""
    found: dict[str, str] = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"] or "")
        if not name or name == PROJECT or name in found or _editable(dist):
            continue
        found[name] = dist.version
    return found


def _editable(dist: metadata.Distribution) -> bool:
    try:
        direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
    except ValueError:
        return False
    return bool(direct_url.get("dir_info", {}).get("editable"))


def _ssl_context() -> ssl.SSLContext:
    # Trust the machine's CA bundle (as pip here does), not only the default.
    cafile = SYSTEM_CA_BUNDLE if Path(SYSTEM_CA_BUNDLE).exists() else None
    return ssl.create_default_context(cafile=cafile)


def _audit_one(name: str, version: str, context: ssl.SSLContext) -> Audit:
    url = f"https://pypi.org/pypi/{name}/json"
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S, context=context) as resp:
            project = json.load(resp)
    except urllib.error.HTTPError as exc:
        return Audit(name, version, unaudited=f"{url} answered {exc.code}")
    except (OSError, ValueError) as exc:
        return Audit(name, version, unaudited=f"{url} failed ({exc})")
    latest = project["info"]["version"]
    try:
        is_latest = Version(version) == Version(latest)
    except InvalidVersion:
        is_latest = False
    if not is_latest:
        # The project JSON only knows the vulnerabilities of the latest release.
        return Audit(name, version, unaudited=f"installed {version}, latest is {latest}")
    # PyPI computed this list for the latest release, i.e. the installed one:
    # every entry applies unless it was withdrawn.
    vulns = [v for v in project.get("vulnerabilities") or [] if not v.get("withdrawn")]
    return Audit(name, version, vulns=vulns)


def _audit_by_project_json() -> list[Audit]:
    context = _ssl_context()
    with ThreadPoolExecutor(max_workers=FETCH_WORKERS) as pool:
        return list(pool.map(lambda item: _audit_one(*item, context), sorted(_installed().items())))


def _describe(vuln: dict) -> str:
    fixed_in = vuln.get("fixed_in") or []
    fix = f"fixed in {', '.join(fixed_in)}" if fixed_in else "no fixed release"
    return f"{vuln.get('id')} ({fix})"


def _check_project_json(why_fallback: str) -> None:
    audits = _audit_by_project_json()
    audited = [a for a in audits if not a.unaudited]
    unaudited = [a for a in audits if a.unaudited]
    vulnerable = [a for a in audited if a.vulns]
    record_figures("pip_audit", {
        "service": "pypi-project-json",
        "dependencies": len(audits),
        "audited": len(audited),
        "not_audited": len(unaudited),
        "vulnerable": [f"{a.name} {a.version}: {[v.get('id') for v in a.vulns]}"
                       for a in vulnerable],
    })
    assert not vulnerable, "\n".join(
        f"{a.name} {a.version}: " + ", ".join(_describe(v) for v in a.vulns) for a in vulnerable
    )
    if unaudited:
        examples = "; ".join(f"{a.name}: {a.unaudited}" for a in unaudited[:5])
        pytest.skip(
            f"{why_fallback}. PyPI's project JSON audited {len(audited)} of {len(audits)} "
            f"dependencies; {len(unaudited)} not audited, e.g. {examples}"
        )
    assert audited, "found no installed dependency to audit"


def test_no_installed_dependency_has_a_known_vulnerability(tmp_path):
    report, why_fallback = _run_pip_audit(tmp_path)
    if report is not None:
        _check_pip_audit(report)
        assert report["dependencies"], "pip-audit found no dependency to audit"
    if why_fallback:
        _check_project_json(why_fallback)
