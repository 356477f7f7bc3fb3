"""The trip state machine of the public API, and nothing else.

    requested -> assigned -> arrived -> in_progress -> completed
    requested | assigned | arrived -> cancelled      (the rider)
    assigned | arrived -> requested                  (the driver cancels)
    requested -> expired                             (nobody accepted in time)

Offers, declines and offer timeouts happen inside `requested`. Each Lua script
receives its allowed source statuses and its target from this table, so the
compare-and-set on the server and this module cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    REQUESTED = "requested"
    ASSIGNED = "assigned"
    ARRIVED = "arrived"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


ACTIVE = frozenset({Status.REQUESTED, Status.ASSIGNED, Status.ARRIVED, Status.IN_PROGRESS})
TERMINAL = frozenset({Status.COMPLETED, Status.CANCELLED, Status.EXPIRED})
# A driver holding the trip: the statuses in which `driver_id` is the driver on it.
WITH_DRIVER = frozenset({Status.ASSIGNED, Status.ARRIVED, Status.IN_PROGRESS})


@dataclass(frozen=True, slots=True)
class Transition:
    action: str
    sources: frozenset[Status]
    target: Status
    actor: str

    @property
    def sources_csv(self) -> str:
        return ",".join(sorted(self.sources))


def _t(action: str, sources: set[Status], target: Status, actor: str) -> Transition:
    return Transition(action, frozenset(sources), target, actor)


S = Status
TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in (
        _t("offer", {S.REQUESTED}, S.REQUESTED, "dispatcher"),
        _t("decline", {S.REQUESTED}, S.REQUESTED, "driver"),
        _t("expire_offer", {S.REQUESTED}, S.REQUESTED, "sweeper"),
        _t("accept", {S.REQUESTED}, S.ASSIGNED, "driver"),
        _t("arrive", {S.ASSIGNED}, S.ARRIVED, "driver"),
        _t("start", {S.ARRIVED}, S.IN_PROGRESS, "driver"),
        _t("complete", {S.IN_PROGRESS}, S.COMPLETED, "driver"),
        _t("rider_cancel", {S.REQUESTED, S.ASSIGNED, S.ARRIVED}, S.CANCELLED, "rider"),
        _t("driver_cancel", {S.ASSIGNED, S.ARRIVED}, S.REQUESTED, "driver"),
        _t("expire", {S.REQUESTED}, S.EXPIRED, "sweeper"),
        _t("rate", {S.COMPLETED}, S.COMPLETED, "rider"),
    )
}


class IllegalTransition(ValueError):
    pass


def transition(action: str) -> Transition:
    return TRANSITIONS[action]


def allowed(status: str, action: str) -> bool:
    return Status(status) in TRANSITIONS[action].sources


def next_status(status: str, action: str) -> Status:
    t = TRANSITIONS[action]
    if Status(status) not in t.sources:
        raise IllegalTransition(f"cannot {action} a trip that is {status}")
    return t.target


def actions_from(status: str) -> list[str]:
    return sorted(a for a, t in TRANSITIONS.items() if Status(status) in t.sources)
