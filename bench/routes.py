"""Scenarios 1-5: the public routes against their matched baselines, in
alternating short rounds (A = the route, B = its baseline) of one run."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import orjson
import psutil

from . import load
from .load import CreateCancel, Fixed, Request, Rider
from .results import Rounds, Row
from .seed import CENTER, DROPOFF, Seeded, cancel_open_trips, driver_key, near, trip_key

JSON = {"Content-Type": "application/json"}


@dataclass
class Pair:
    name: str
    baseline_name: str
    number: int
    system: Fixed | CreateCancel
    baseline: Fixed
    system_url: str
    baseline_url: str
    # Run after each round of the route (untimed), to put its state back.
    after_round: Callable[[], None] | None = None


@dataclass
class Plan:
    rounds: int
    round_s: float
    connections: int
    level_s: float
    levels: tuple[float, ...]


@dataclass
class Curves:
    points: dict[str, list[dict]] = field(default_factory=dict)

    def add(self, name: str, result: load.LoadResult, target: float | None) -> None:
        self.points.setdefault(name, []).append({
            "target_rps": round(target, 1) if target else None,
            "rps": round(result.rps, 1),
            "p50_ms": round(result.p50_ms, 3),
            "p99_ms": round(result.p99_ms, 3),
            "errors": result.errors,
        })


def _auth(token: str, extra: dict | None = None) -> dict:
    return {"Authorization": f"Bearer {token}", **(extra or {})}


def _enc(key: str) -> str:
    return quote(key, safe="")


def view_pair(s: Seeded, gateway: str, front: str) -> Pair:
    sys_reqs = [Request("GET", f"/v1/trips/{t}", _auth(r.token))
                for r, t in zip(s.view_riders, s.view_trips)]
    base_reqs = [
        Request("GET", f"/view/{_enc(trip_key(t))}/{_enc(driver_key(d.subject_id))}",
                _auth(r.token))
        for r, t, d in zip(s.view_riders, s.view_trips, s.assigned_drivers)
    ]
    return Pair("GET /v1/trips/{id} (assigned trip)", "baseline: view", 2, Fixed(sys_reqs),
                Fixed(base_reqs), gateway, front)


def location_pair(s: Seeded, gateway: str, front: str, rng: random.Random) -> Pair:
    sys_reqs, base_reqs = [], []
    for d in s.location_drivers:
        for _ in range(4):
            body = orjson.dumps({**near(CENTER, 2000, rng), "heading": 90.0, "speed_mps": 8.5})
            sys_reqs.append(Request("PUT", "/v1/driver/location", _auth(d.token, JSON), body,
                                    (204,)))
            base_reqs.append(Request("PUT", f"/location/{_enc(driver_key(d.subject_id))}",
                                     _auth(d.token, JSON), body, (204,)))
    return Pair("PUT /v1/driver/location", "baseline: location", 3, Fixed(sys_reqs),
                Fixed(base_reqs), gateway, front)


def estimates_pair(s: Seeded, gateway: str, front: str, rng: random.Random) -> Pair:
    sys_reqs = []
    for r in s.view_riders:
        body = orjson.dumps({"pickup": near(CENTER, 1500, rng), "dropoff": DROPOFF})
        sys_reqs.append(Request("POST", "/v1/estimates", _auth(r.token, JSON), body))
    base = view_pair(s, gateway, front).baseline
    return Pair("POST /v1/estimates", "baseline: view", 4, Fixed(sys_reqs), base, gateway, front)


def create_cancel_pair(s: Seeded, gateway: str, front: str, rng: random.Random,
                       location: Pair) -> Pair:
    # Premium: no premium driver is online, so the loop measures the two
    # routes and the dispatcher's search, not offers to drivers.
    body = orjson.dumps({"pickup": near(CENTER, 500, rng), "dropoff": DROPOFF,
                         "product": "premium"})
    riders = [Rider(r.token, r.subject_id) for r in s.loop_riders]

    def cleanup() -> None:
        asyncio.run(cancel_open_trips(gateway, s.loop_riders))

    return Pair("POST /v1/trips + cancel, per rider in a loop", "baseline: location", 5,
                CreateCancel(riders, body), location.baseline, gateway, front,
                after_round=cleanup)


def chain_requests(key: str) -> Fixed:
    return Fixed([Request("GET", f"/chain/{_enc(key)}")])


def measure_pair(pair: Pair, plan: Plan, watch: dict[str, psutil.Process] | None = None,
                 rss: dict[str, int] | None = None) -> tuple[Rounds, Rounds]:
    """Alternate A (the route) and B (its baseline), `plan.rounds` times each."""
    a, b = Rounds(), Rounds()
    conns = plan.connections
    for _ in range(plan.rounds):
        a.add(load.run(pair.system_url, pair.system, connections=conns, duration_s=plan.round_s))
        if watch is not None and rss is not None:
            sample_rss(watch, rss)
        if pair.after_round is not None:
            pair.after_round()
        b.add(load.run(pair.baseline_url, pair.baseline, connections=conns,
                       duration_s=plan.round_s))
    return a, b


def measure_levels(pair: Pair, plan: Plan, a_max: float, b_max: float,
                   curves: Curves) -> dict[str, load.LoadResult]:
    """Paced runs at fractions of each side's maximum, alternating A and B."""
    half = {}
    for frac in plan.levels:
        for name, url, spec, top in ((pair.name, pair.system_url, pair.system, a_max),
                                     (pair.baseline_name, pair.baseline_url, pair.baseline, b_max)):
            target = max(10.0, top * frac)
            r = load.run(url, spec, connections=max(plan.connections, 32),
                         duration_s=plan.level_s, rate=target)
            curves.add(name, r, target)
            if frac == 0.5:
                half[name] = r
    return half


def sample_rss(watch: dict[str, psutil.Process], rss: dict[str, int]) -> None:
    for name, proc in watch.items():
        try:
            rss[name] = max(rss.get(name, 0), proc.memory_info().rss)
        except psutil.Error:
            pass


def pair_rows(pair: Pair, a: Rounds, b: Rounds, *, target: str | None = None,
              half: dict[str, load.LoadResult] | None = None,
              ratio_target: float | None = None) -> list[Row]:
    ratio = a.rps / b.rps if b.rps else None
    extra = {"rounds_rps": a.per_round(), "baseline_rounds_rps": b.per_round()}
    met = None
    if half is not None and pair.name in half:
        h = half[pair.name]
        extra["half_rate"] = {"rps": round(h.rps, 1), "p50_ms": round(h.p50_ms, 3),
                              "p99_ms": round(h.p99_ms, 3), "errors": h.errors}
    if ratio_target is not None and ratio is not None:
        met = ratio >= ratio_target and a.errors == 0
        if half is not None and pair.name in half:
            met = met and half[pair.name].p99_ms < 20.0
    rows = [
        Row(pair.name, round(a.rps, 1), round(ratio, 3) if ratio else None, round(a.p50, 3),
            round(a.p99, 3), a.errors, baseline=pair.baseline_name, number=pair.number,
            target=target, met=met, extra=extra),
    ]
    return rows


def baseline_row(name: str, b: Rounds, half: dict[str, load.LoadResult] | None = None) -> Row:
    extra = {"rounds_rps": b.per_round()}
    if half and name in half:
        h = half[name]
        extra["half_rate"] = {"rps": round(h.rps, 1), "p50_ms": round(h.p50_ms, 3),
                              "p99_ms": round(h.p99_ms, 3), "errors": h.errors}
    return Row(name, round(b.rps, 1), 1.0, round(b.p50, 3), round(b.p99, 3), b.errors,
               baseline=name, number=1, extra=extra)
