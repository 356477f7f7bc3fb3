"""A chart of a load run that locust's own report cannot draw: latency over
time per route and the time from request to assignment, without the long
poll (its wait is the driver's choice, and in locust's "Aggregated" line it
flattens every other route under it).

    python -m tests.load.report reports/load       # reads reports/load_stats_history.csv

Writes `<prefix>_latency.png`: p50 and p95 of each route over the run (locust's
current-window percentiles, one point per row of the history), one panel for
the API routes and one for the request-to-assigned metric.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

LEFT_OUT = ("[long-poll",)  # the offers long poll, whatever its wait
ASSIGNED = "request-to-assigned"


def read_history(prefix: Path) -> dict[str, list[tuple[float, float, float]]]:
    """(seconds since the start, p50 ms, p95 ms) per name, Aggregated and the
    long poll left out."""
    series: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    start = None
    with open(f"{prefix}_stats_history.csv", newline="") as f:
        for row in csv.DictReader(f):
            name = f"{row['Type']} {row['Name']}".strip()
            if row["Name"] == "Aggregated" or any(x in name for x in LEFT_OUT):
                continue
            try:
                t = float(row["Timestamp"])
                p50, p95 = float(row["50%"]), float(row["95%"])
            except (KeyError, ValueError):
                continue  # "N/A" before a name has answers
            start = t if start is None else min(start, t)
            series[name].append((t, p50, p95))
    return {n: [(t - (start or 0), a, b) for t, a, b in pts] for n, pts in series.items() if pts}


def chart(prefix: Path) -> tuple[Path, list[str]]:
    """Draw the chart; returns its path and the names drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = read_history(prefix)
    routes = sorted((n for n in series if ASSIGNED not in n),
                    key=lambda n: -max(p95 for _, _, p95 in series[n]))[:10]
    assigned = [n for n in series if ASSIGNED in n]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 8), sharex=True)
    for name in routes:
        t = [x[0] for x in series[name]]
        line, = top.plot(t, [x[2] for x in series[name]], label=f"{name} p95", lw=1.2)
        top.plot(t, [x[1] for x in series[name]], color=line.get_color(), lw=0.8, ls=":")
    top.set_ylabel("ms (p95 solid, p50 dotted)")
    top.set_title("API latency by route (the offers long poll left out)")
    top.legend(fontsize=7, ncol=2, loc="upper left")
    for name in assigned:
        t = [x[0] for x in series[name]]
        bottom.plot(t, [x[2] / 1000 for x in series[name]], label="p95", lw=1.2)
        bottom.plot(t, [x[1] / 1000 for x in series[name]], label="p50", lw=1.2)
    bottom.set_ylabel("seconds")
    bottom.set_xlabel("seconds into the run")
    bottom.set_title("Request to assigned (as riders saw it: includes their 1 s polling)")
    bottom.legend(fontsize=8, loc="upper left")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    out = Path(f"{prefix}_latency.png")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out, routes + assigned


if __name__ == "__main__":
    path, names = chart(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/load"))
    print(f"{path}: {len(names)} series")
