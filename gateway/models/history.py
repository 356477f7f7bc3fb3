"""Ops: the recent past (gateway/history.py)."""

from __future__ import annotations


from pydantic import (
    Field,
)


from .base import IsoTime, Out

# --- ops: the recent past (gateway/history.py) ----------------------------------
class HistoryMinute(Out):
    at: IsoTime = Field(description="The minute's start.")
    requested: int
    assigned: int
    completed: int
    cancelled: int
    expired: int
    to_assigned_p50_ms: int | None = Field(description="Request to assignment, median.")
    to_assigned_p95_ms: int | None
    fare_avg: str | None = Field(description="Mean final fare of the trips completed.")
    surge_avg: float | None = Field(description="Mean surge of the trips requested.")


class HistorySample(Out):
    at: IsoTime
    value: float


class RouteStats(Out):
    route: str = Field(description="`METHOD /path`.")
    requests: int
    errors: int = Field(description="5xx answers.")
    rejected: int = Field(description="4xx answers.")
    p50_ms: float | None = Field(description="Upper bound of the histogram bucket holding it.")
    p95_ms: float | None


class OpsHistory(Out):
    since: IsoTime = Field(description="When this gateway began counting: the current run.")
    minute_s: int
    run: dict[str, int] = Field(
        description="Trips requested, assigned, completed, cancelled and expired since `since`."
    )
    minutes: list[HistoryMinute] = Field(description="The last hour, oldest first.")
    events_per_s: list[HistorySample] = Field(description="Every 10 s, the last 20 minutes.")
    routes: list[RouteStats] = Field(
        description="This gateway's routes over `route_window_s`, busiest first; long polls "
        "and event streams left out (they wait by design)."
    )
    route_window_s: int
