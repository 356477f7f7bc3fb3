"""The event envelope of the public contract.

`{id, type, version, occurred_at, producer, trace_id, trip_id?, driver_id?,
data}`. Most events are built inside Lua scripts (common/lua/prelude.lua), in
the same atomic step as the state change; this module builds the same shape
in Python and reads entries back.
"""

from __future__ import annotations

from typing import Any

import orjson

from .ids import new_ulid
from .timeutil import iso, now_ms
from .tracing import new_trace_id, trace_id_var
from .trip.statemachine import TERMINAL, TRIP_EVENTS

VERSION = 1

# The trip's event types come from its state machine, in the order of its story.
TRIP_TYPES = tuple(e.type for e in TRIP_EVENTS)
DRIVER_TYPES = ("driver.registered", "driver.online", "driver.available", "driver.offline")
TERMINAL_TYPES = frozenset(e.type for e in TRIP_EVENTS if e.status in TERMINAL)
# Dispatch's own business: offers to drivers, their declines and expiries
# name drivers who never took the trip.
DISPATCH_TYPES = frozenset(e.type for e in TRIP_EVENTS if not e.public)
# The trip's public story: what its rider and its assigned driver may see (API.md).
PUBLIC_TRIP_TYPES = frozenset(TRIP_TYPES) - DISPATCH_TYPES


def envelope(
    type_: str,
    producer: str,
    *,
    trip_id: str | None = None,
    driver_id: str | None = None,
    data: dict | None = None,
    trace_id: str | None = None,
    event_id: str | None = None,
    occurred_ms: int | None = None,
) -> dict[str, Any]:
    env: dict[str, Any] = {
        "id": event_id or new_ulid(),
        "type": type_,
        "version": VERSION,
        "occurred_at": iso(occurred_ms if occurred_ms is not None else now_ms()),
        "producer": producer,
        "trace_id": trace_id or trace_id_var.get() or new_trace_id(),
    }
    if trip_id:
        env["trip_id"] = trip_id
    if driver_id:
        env["driver_id"] = driver_id
    env["data"] = data or {}
    return env


def entry_fields(env: dict[str, Any]) -> dict[str, str]:
    """The fields of a stream entry holding an envelope."""
    return {
        "type": env["type"],
        "trip_id": env.get("trip_id") or "",
        "driver_id": env.get("driver_id") or "",
        "env": orjson.dumps(env).decode(),
    }


def decode_entry(fields: dict[str, str]) -> dict[str, Any]:
    return orjson.loads(fields["env"])


def script_header(producer: str, n_events: int) -> list[str]:
    """The first three ARGV of every state-changing script (prelude.lua):
    fresh event ids, the trace id of the current request, the producer."""
    ids = ",".join(new_ulid() for _ in range(n_events))
    return [ids, trace_id_var.get() or new_trace_id(), producer]
