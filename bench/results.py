"""One result row per scenario, the printed table, results.json and the chart."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .load import LoadResult


@dataclass
class Row:
    scenario: str
    requests_per_s: float | None
    ratio: float | None
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    baseline: str | None = None
    number: int = 0  # the scenario's number in docs/performance.md (1-10)
    unit: str = "requests/s"
    target: str | None = None
    met: bool | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rounds:
    """Alternating rounds of one side (the route or its baseline)."""

    results: list[LoadResult] = field(default_factory=list)

    def add(self, r: LoadResult) -> None:
        self.results.append(r)

    @property
    def rps(self) -> float:
        t = sum(r.duration_s for r in self.results)
        return sum(r.requests for r in self.results) / t if t else 0.0

    @property
    def p50(self) -> float:
        return statistics.median(r.p50_ms for r in self.results) if self.results else 0.0

    @property
    def p99(self) -> float:
        return statistics.median(r.p99_ms for r in self.results) if self.results else 0.0

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.results)

    def per_round(self) -> list[float]:
        return [round(r.rps, 1) for r in self.results]


def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[Row]) -> str:
    w = max([len("scenario"), *(len(r.scenario) for r in rows)])
    head = (f"{'#':>2} {'scenario':<{w}} {'rate':>11} {'ratio':>6} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'err':>4}")
    lines = [head, "-" * len(head)]
    for r in rows:
        rate = _fmt(r.requests_per_s, ",.0f")
        lines.append(
            f"{r.number:>2} {r.scenario:<{w}} {rate:>11} {_fmt(r.ratio, '.2f'):>6} "
            f"{_fmt(r.p50_ms, '.2f'):>8} {_fmt(r.p99_ms, '.2f'):>8} {r.errors:>4}"
        )
    return "\n".join(lines)


def write_json(path: Path, rows: list[Row], meta: dict) -> None:
    path.write_text(json.dumps({"meta": meta, "scenarios": [asdict(r) for r in rows]},
                               indent=2) + "\n")


def draw_chart(path: Path, curves: dict[str, list[dict]], scale: list[dict]) -> None:
    """Latency against load (p50 and p99 per load level), and the scale curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    groups = [
        ("GET /v1/trips/{id} vs its baseline",
         ("GET /v1/trips/{id} (assigned trip)", "baseline: view")),
        ("PUT /v1/driver/location vs its baseline",
         ("PUT /v1/driver/location", "baseline: location")),
    ]
    colors = ["tab:blue", "tab:orange"]
    for ax, (title, names) in zip(axes[:2], groups):
        for name, color in zip(names, colors):
            pts = sorted(curves.get(name, []), key=lambda p: p["rps"])
            if not pts:
                continue
            xs = [p["rps"] for p in pts]
            ax.plot(xs, [p["p99_ms"] for p in pts], "-o", color=color, label=f"{name} p99")
            ax.plot(xs, [p["p50_ms"] for p in pts], "--.", color=color, label=f"{name} p50")
        ax.axhline(20, color="grey", lw=0.8, ls=":", label="20 ms")
        ax.set_title(title)
        ax.set_xlabel("achieved requests/s")
        ax.set_ylabel("latency (ms)")
        ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    ax = axes[2]
    fixed = [p for p in scale if p["kind"] == "geosearch_3km"]
    if fixed:
        ax.plot([p["n"] for p in fixed], [p["p50_ms"] for p in fixed], ":^", color="grey",
                label="reference: one fixed 3 km GEOSEARCH p50")
    drivers = [p for p in scale if p["kind"] == "drivers"]
    pending = [p for p in scale if p["kind"] == "pending"]
    if drivers:
        ax.plot([p["n"] for p in drivers], [p["p50_ms"] for p in drivers], "-o",
                label="choose+offer p50, by online drivers")
        ax.plot([p["n"] for p in drivers], [p["p99_ms"] for p in drivers], "--o",
                label="choose+offer p99, by online drivers")
    if pending:
        ax.plot([p["n"] for p in pending], [p["p50_ms"] for p in pending], "-s",
                label="driver freed p50, by pending trips")
        ax.plot([p["n"] for p in pending], [p["p99_ms"] for p in pending], "--s",
                label="driver freed p99, by pending trips")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_title("Dispatch cost against scale")
    ax.set_xlabel("online drivers / pending trips in the region")
    ax.set_ylabel("ms")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
