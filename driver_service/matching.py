"""The matching choice, plain: which driver gets a trip, in which order
waiting trips are served, and how far to look.

The nearest available driver who has not refused the trip gets it. Searches
start small and widen up to DISPATCH_RADIUS_M, each COUNT-limited, so the
cost of one match stays flat however many drivers are online: a dense city
answers within the first ring.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

RADIUS_STEPS_M = (500.0, 1000.0, 2000.0, 3500.0)
# Candidates fetched per search, on top of the drivers known to be excluded.
CANDIDATES_PER_SEARCH = 8


@dataclass(frozen=True, slots=True)
class Candidate:
    driver_id: str
    distance_m: float


def radius_steps(max_radius_m: float) -> list[float]:
    steps = [r for r in RADIUS_STEPS_M if r < max_radius_m]
    return [*steps, float(max_radius_m)]


def search_count(excluded: int) -> int:
    return CANDIDATES_PER_SEARCH + excluded


def eligible(candidates: Iterable[Candidate], excluded: set[str]) -> Iterator[Candidate]:
    """Candidates nearest first, without those excluded (refused or tried)."""
    for c in sorted(candidates, key=lambda c: (c.distance_m, c.driver_id)):
        if c.driver_id not in excluded:
            yield c


def choose_driver(candidates: Iterable[Candidate], excluded: set[str]) -> Candidate | None:
    return next(eligible(candidates, excluded), None)


def rank_order(scores: dict[str, float]) -> list[str]:
    """Waiting trips oldest first (score = request time), ties by id."""
    return [t for t, _ in sorted(scores.items(), key=lambda kv: (kv[1], kv[0]))]
