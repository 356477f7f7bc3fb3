"""The trip's vocabulary: its statuses, the steps between them and the event
each step announces. Everything else that names a status or a trip event
derives from this module: events.py, the gateway's models, GET /v1/vocabulary
(which the dashboard and the simulator read) and each Lua script, which gets
its allowed source statuses and its target from this table, so the
compare-and-set on the server and this module cannot disagree.

    requested -> assigned -> arrived -> in_progress -> completed
    requested | assigned | arrived -> cancelled      (the rider)
    assigned | arrived -> requested                  (the driver cancels)
    requested -> expired                             (nobody accepted in time)

Offers, declines and offer timeouts happen inside `requested`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    # Lifecycle order: the order in which lists of statuses are shown.
    REQUESTED = "requested"
    ASSIGNED = "assigned"
    ARRIVED = "arrived"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


ACTIVE = frozenset({Status.REQUESTED, Status.ASSIGNED, Status.ARRIVED, Status.IN_PROGRESS})
TERMINAL = frozenset(set(Status) - ACTIVE)
# A driver holding the trip: the statuses in which `driver_id` is the driver on it.
WITH_DRIVER = frozenset({Status.ASSIGNED, Status.ARRIVED, Status.IN_PROGRESS})


def in_order(statuses) -> tuple[Status, ...]:
    """The given statuses in lifecycle order."""
    return tuple(s for s in Status if s in statuses)


@dataclass(frozen=True, slots=True)
class Transition:
    action: str
    sources: frozenset[Status]
    target: Status
    actor: str
    # The event the step appends in the same atomic step.
    event: str
    # Dispatch's own step: its event names a driver who may never hold the
    # trip, so it stays out of the trip's public story.
    dispatch: bool = False
    # A step that only moves the trip on and records when (this field of the
    # trip document): driver_service runs every such step with one script,
    # `advance_trip`, so a new one is a line here and a route.
    stamp: str | None = None

    @property
    def sources_csv(self) -> str:
        return ",".join(sorted(self.sources))

    @property
    def status_after(self) -> Status | None:
        """The status its event announces; None when the trip stays where it was."""
        return None if self.sources == {self.target} else self.target


@dataclass(frozen=True, slots=True)
class TripEvent:
    type: str
    # The trip's status after the event; None: unchanged.
    status: Status | None
    # False: dispatch's own, never shown to the trip's rider or driver.
    public: bool


def _t(action: str, sources: set[Status], target: Status, actor: str, event: str,
       dispatch: bool = False, stamp: str | None = None) -> Transition:
    return Transition(action, frozenset(sources), target, actor, event, dispatch, stamp)


S = Status
# In the order of a trip's story: the events are listed in this order too.
TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in (
        _t("offer", {S.REQUESTED}, S.REQUESTED, "dispatcher", "trip.offered", dispatch=True),
        _t("decline", {S.REQUESTED}, S.REQUESTED, "driver", "trip.offer_declined",
           dispatch=True),
        _t("expire_offer", {S.REQUESTED}, S.REQUESTED, "sweeper", "trip.offer_expired",
           dispatch=True),
        _t("accept", {S.REQUESTED}, S.ASSIGNED, "driver", "trip.assigned"),
        _t("driver_cancel", {S.ASSIGNED, S.ARRIVED}, S.REQUESTED, "driver",
           "trip.driver_cancelled"),
        _t("arrive", {S.ASSIGNED}, S.ARRIVED, "driver", "trip.driver_arrived",
           stamp="arrived_at"),
        _t("start", {S.ARRIVED}, S.IN_PROGRESS, "driver", "trip.started", stamp="started_at"),
        _t("complete", {S.IN_PROGRESS}, S.COMPLETED, "driver", "trip.completed"),
        _t("rider_cancel", {S.REQUESTED, S.ASSIGNED, S.ARRIVED}, S.CANCELLED, "rider",
           "trip.cancelled"),
        _t("expire", {S.REQUESTED}, S.EXPIRED, "sweeper", "trip.expired"),
        _t("rate", {S.COMPLETED}, S.COMPLETED, "rider", "trip.rated"),
    )
}

# The assigned driver's steps that only move the trip on (`advance_trip`).
ADVANCES: dict[str, Transition] = {
    a: t for a, t in TRANSITIONS.items() if t.stamp is not None and t.actor == "driver"
}

# A trip begins with its request: no transition leads there.
REQUESTED_EVENT = "trip.requested"
TRIP_EVENTS: tuple[TripEvent, ...] = (
    TripEvent(REQUESTED_EVENT, S.REQUESTED, True),
    *(TripEvent(t.event, t.status_after, not t.dispatch) for t in TRANSITIONS.values()),
)


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
