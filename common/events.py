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
from .trip.document import expand
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


# --- the per-trip event list (keys.trip_events) ------------------------------
# One element per event of the trip, written by `emit` (common/lua/prelude.lua)
# in the step that publishes the event: a JSON array
#
#     [stream_id, event id, type, occurred ms, producer, trace_id, driver_id, data?]
#
# (driver_id "" when none, data left out when empty). It holds only what its
# key and the trip document do not: the trip id is the list's, `version` is
# VERSION, and `trip.requested` keeps no data: what it carries is the request,
# which the document holds unchanged for the trip's life. Lists written before
# hold `{"stream_id", "event": envelope}` objects; both read alike.
REQUESTED = "trip.requested"
REQUEST_FIELDS = ("rider_id", "product", "pickup", "dropoff", "fare_estimate")
# Lua's cjson writes numbers with 14 significant digits, and a whole float as
# an integer: the events on the stream carry them so.
_CJSON_DIGITS = 14


def _cjson_number(x: float | int) -> float | int:
    value = float(f"{x:.{_CJSON_DIGITS}g}")
    return int(value) if value.is_integer() else value


def _cjson_point(p: dict) -> dict:
    return {"lat": _cjson_number(p["lat"]), "lon": _cjson_number(p["lon"])}


def requested_data(trip: dict[str, Any], occurred_ms: int) -> dict[str, Any]:
    """The data of `trip.requested`, as the event carried it, from the trip
    (its document or its public view: both show the request)."""
    trip = expand(trip)
    data = {k: trip[k] for k in REQUEST_FIELDS}
    data["pickup"] = _cjson_point(trip["pickup"])
    data["dropoff"] = _cjson_point(trip["dropoff"])
    data["surge"] = _cjson_number(trip["surge"])
    data["requested_at"] = iso(occurred_ms)
    return data


def trip_event_item(raw: str | bytes, trip_id: str, trip: dict[str, Any] | None) -> dict[str, Any]:
    """One element of a trip's event list as `{stream_id, event}` with the
    full envelope. `trip` (its document or its view) is needed only for a
    `trip.requested` element; None raises KeyError there."""
    if raw[:1] in ("{", b"{"):
        return orjson.loads(raw)
    sid, event_id, type_, ms, producer, trace_id, driver_id, *rest = orjson.loads(raw)
    env: dict[str, Any] = {
        "id": event_id, "type": type_, "version": VERSION, "occurred_at": iso(ms),
        "producer": producer, "trace_id": trace_id, "trip_id": trip_id,
    }
    if driver_id:
        env["driver_id"] = driver_id
    if rest:
        env["data"] = rest[0]
    elif type_ == REQUESTED:
        if trip is None:
            raise KeyError(f"{trip_id}: its request event needs the trip")
        env["data"] = requested_data(trip, ms)
    else:
        env["data"] = {}
    return {"stream_id": sid, "event": env}


def trip_event_items(raws: list, trip_id: str, trip: dict[str, Any] | None) -> list[dict]:
    return [trip_event_item(raw, trip_id, trip) for raw in raws]


def trip_event_stream_id(raw: str | bytes) -> str:
    """The stream entry id of one element of a trip's event list."""
    item = orjson.loads(raw)
    return item["stream_id"] if isinstance(item, dict) else item[0]
