"""The trip vocabulary, as the gateway serves it (GET /v1/vocabulary).

The city carries no copy of the statuses, event types, transitions or
products: it asks the system, so a new status or product needs no change here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PATH = "/v1/vocabulary"


class VocabularyError(RuntimeError):
    """The gateway did not answer with a vocabulary the city can use."""


@dataclass(frozen=True)
class Vocabulary:
    statuses: tuple[str, ...]  # in lifecycle order: the first is a new trip's
    active: frozenset[str]
    terminal: frozenset[str]
    with_driver: frozenset[str]
    # event type -> the trip's status after it, for the events that change it
    event_status: Mapping[str, str]
    # action -> (the statuses it may start from, the status it leads to, who does it)
    transitions: Mapping[str, tuple[frozenset[str], str, str]]
    products: tuple[str, ...]
    product_seats: Mapping[str, int]

    @classmethod
    def from_json(cls, body: Any) -> Vocabulary:
        try:
            statuses = body["trip_statuses"]
            if not statuses or not body["products"]:
                raise VocabularyError("a vocabulary without statuses or products")
            return cls(
                statuses=tuple(s["name"] for s in statuses),
                active=frozenset(s["name"] for s in statuses if s["active"]),
                terminal=frozenset(s["name"] for s in statuses if s["terminal"]),
                with_driver=frozenset(s["name"] for s in statuses if s["with_driver"]),
                event_status={e["type"]: e["status"] for e in body["trip_events"]
                              if e["status"] is not None},
                transitions={t["action"]: (frozenset(t["from"]), t["to"], t["actor"])
                             for t in body["transitions"]},
                products=tuple(p["name"] for p in body["products"]),
                product_seats={p["name"]: int(p["seats"]) for p in body["products"]
                               if isinstance(p.get("seats"), int)},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise VocabularyError(f"an unexpected vocabulary: {exc!r}") from exc

    @property
    def initial(self) -> str:
        return self.statuses[0]

    def sources(self, action: str) -> frozenset[str]:
        """The statuses `action` may start from (none for an unknown action)."""
        t = self.transitions.get(action)
        return t[0] if t else frozenset()

    def target(self, action: str) -> str:
        """The status `action` leads to."""
        return self.transitions[action][1]

    def driver_step(self, status: str) -> str | None:
        """The driver's next action on a trip they hold in `status`: the
        driver's transition to the nearest later status of the lifecycle
        (arrive, start, complete...); None when there is none."""
        if status not in self.with_driver:
            return None
        order = {s: i for i, s in enumerate(self.statuses)}
        here = order.get(status, len(order))
        ahead = [(order[target], action) for action, (sources, target, actor)
                 in self.transitions.items()
                 if actor == "driver" and status in sources and order.get(target, -1) > here]
        return min(ahead)[1] if ahead else None
