"""Hot, warm, cold: storage, archive and analytics."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)

from common.models import OPS_LIST_LIMIT

from .base import IsoTime, Money, Out
from .ops import ActiveTrip, ConsumerGroup, OpsDrivers, PendingTrip, Region, StreamInfo

# --- hot, warm, cold ----------------------------------------------------------
class RedisMemory(Out):
    used_bytes: int = Field(description="Memory Redis uses (INFO memory `used_memory`).")
    max_bytes: int | None = Field(
        description="`maxmemory` (`REDIS_MAXMEMORY` on the embedded server); null: no limit. "
        "At the limit, writes are refused (503 with Retry-After), never evicted."
    )
    policy: str | None = Field(description="`maxmemory-policy`: `noeviction` here.")


class ArchiveStatus(Out):
    due: int = Field(description="Finished trips past `HOT_RETENTION_S`, still in Redis.")
    lag_s: float = Field(description="How long the oldest due trip has been waiting to go cold.")
    hot_retention_s: float = Field(description="`HOT_RETENTION_S`.")


class ColdCounts(Out):
    reachable: bool = Field(description="False while trip_service cannot reach PostgreSQL "
                            "(cold reads are 503 then; everything hot is served).")
    trips: int | None = Field(None, description="Trips in the cold store.")
    events: int | None = Field(None, description="Their events.")


class Storage(Out):
    redis_memory: RedisMemory
    archive: ArchiveStatus
    cold_store: ColdCounts | None = Field(None, description="Absent without a cold store.")


class AnalyticsQuery(BaseModel):
    # An unknown parameter is a 422 naming it: nothing else filters this report.
    model_config = ConfigDict(extra="forbid")

    days: int = Field(7, ge=1, le=90, description="Trips requested in the last `days` days.")


class AnalyticsDay(Out):
    day: str = Field(description="UTC date, `YYYY-MM-DD`.")
    by_outcome: dict[str, int] = Field(description="Trips by outcome: completed, cancelled, "
                                       "expired.")
    revenue: Money = Field(description="Fares of the completed trips.")


class AnalyticsProduct(Out):
    product: str
    trips: int
    by_outcome: dict[str, int]
    revenue: Money
    average_rating: float | None = Field(description="Of the rated trips; null if none.")
    request_to_assigned_s: dict[str, float | None] = Field(
        description="Seconds from request to a driver's accept: `p50`, `p90`, `p99`."
    )
    cancelled_by: dict[str, int] = Field(description="Cancelled trips by who cancelled.")


class Analytics(Out):
    days: int
    per_day: list[AnalyticsDay]
    per_product: list[AnalyticsProduct]


class OpsOverview(Out):
    trips_by_status: dict[str, int] | None = None
    trips_by_region: dict[str, dict[str, int]] | None = Field(
        None, description="Trips by status in each region."
    )
    pending_total: dict[str, int] | None = Field(
        None, description="Requested trips waiting, by product."
    )
    pending: list[PendingTrip] | None = Field(
        None, description="The pending queue in rank order (oldest first), with waiting times."
    )
    active_trips: list[ActiveTrip] | None = Field(
        None,
        description=f"Trips requested, assigned, arrived or in progress, oldest request "
        f"first, at most {OPS_LIST_LIMIT:,} (all regions together): trip_service's index "
        "of active trips, kept in the same atomic step as each status change.",
    )
    active_trips_total: int | None = Field(
        None, description="Active trips; more than `active_trips` holds when it is capped."
    )
    drivers: OpsDrivers | None = Field(
        None, description="Drivers online and available by product, and where they are."
    )
    open_offers: int | None = None
    consumer_groups: list[ConsumerGroup] | None = Field(
        None, description="Lag and pending count of every consumer group."
    )
    dead_letters: int | None = None
    streams: list[StreamInfo] | None = None
    events_per_s: float | None = Field(
        None,
        description="Events added to the region streams per second, summed over the "
        "regions, over about the last 10 s: from samples of each stream's entries-added "
        "counter kept in Redis, so the same for every gateway. Null until a sample a "
        "second old exists, or when driver_service did not answer.",
    )
    regions: list[Region] = Field(description="The service area.")
    offer_timeout_s: float = Field(description="`OFFER_TIMEOUT_S`.")
    trip_expiry_s: float = Field(description="`TRIP_EXPIRY_S`.")
    dispatch_radius_m: float = Field(description="`DISPATCH_RADIUS_M`.")
    sse_clients: int = Field(description="SSE clients of this gateway process.")
    missing: list[str] | None = Field(
        None, description="Parts whose service did not answer: `trips`, `drivers`."
    )
    storage: Storage | None = Field(
        None, description="Redis memory against its limit, the archive and the cold store "
        "(trip_service)."
    )


class EventEnvelope(Out):
    """An event as the streams carry it (the `data:` of an SSE message)."""

    id: str = Field(description="The event id (ULID), unique per event.")
    type: str = Field(description="e.g. `trip.assigned`.")
    version: int
    occurred_at: IsoTime
    producer: str = Field(description="The service that made the change.")
    trace_id: str
    trip_id: str | None = None
    driver_id: str | None = None
    data: dict[str, Any] = Field(description="The event's own fields.")


class TopologyNode(Out):
    id: str = Field(description="The node's cluster id.")
    address: str = Field(description="host:port.")
    role: Literal["primary", "replica", "stale primary"] = Field(
        description="`stale primary`: a master that is not the shard's primary (one that "
        "failed and is still listed, or a paused one that has not yet learnt of its "
        "successor)."
    )
    follows: str | None = Field(description="The primary it replicates (address).")
    replication_offset: int | None = Field(
        description="Its replication offset, from its own answer (null when it did not answer)."
    )
    lag_bytes: int | None = Field(
        description="Bytes of the replication stream it is behind its primary, from the two "
        "nodes' answers in the same poll (null for a primary)."
    )
    health: str | None = Field(
        description="The cluster's view of the node, as most nodes say: `online`, `fail`, "
        "`loading`."
    )
    reachable: bool = Field(description="It answered this gateway's last poll.")
    link: Literal["up", "down"] | None = Field(
        description="A replica's link to its primary: up when the replica answers and sees "
        "an online primary (null for a primary)."
    )


class TopologyShard(Out):
    id: str
    slots: list[list[int]] = Field(description="Hash-slot ranges, [first, last].")
    regions: list[str] = Field(description="The regions whose keys (hash tag) live here.")
    primary: str | None = Field(description="The address of the primary; null while none answers.")
    no_primary_for_s: float | None = Field(
        description="While the shard has no primary: for how long (since the last poll "
        "that found one)."
    )
    nodes: list[TopologyNode]


class Failover(Out):
    at: IsoTime = Field(description="When this gateway first saw the new primary.")
    shard: str
    regions: list[str]
    failed: str | None = Field(description="The primary before (address).")
    promoted: str = Field(description="The primary after (address).")
    no_primary_s: float = Field(
        description="How long the shard had no answering primary, measured between polls: "
        "from the last poll that found the old one to the first that found the new one "
        "(an upper bound: the gap began up to one poll interval and one poll timeout "
        "later; polls come five times as often while a shard has no primary)."
    )


class OpsTopology(Out):
    mode: Literal["one server", "cluster"] = Field(
        description="`one server`: a single Redis, no shards or replicas to show."
    )
    polled_at: IsoTime | None = Field(description="The last poll of the nodes.")
    poll_interval_s: float | None = Field(description="`TOPOLOGY_POLL_S`.")
    shards: list[TopologyShard] = Field(description="By first slot.")
    failovers: list[Failover] = Field(
        description="Failovers this gateway process saw, newest first, at most 50."
    )
    problem: str | None = Field(
        description="Why the last poll found nothing: no node answered (e.g. the gateway's "
        "Redis user may not run CLUSTER SHARDS), or not polled yet."
    )


class SseMessage(Out):
    """One server-sent event, as it appears on the wire: an SSE `data:` line
    is text, here the event envelope as JSON."""

    id: str = Field(description="The stream entry id; send back as `Last-Event-ID` to resume.")
    event: str = Field(description="The event type, e.g. `trip.assigned`.")
    data: str = Field(
        description="The event envelope as JSON: `{id, type, version, occurred_at, producer, "
        "trace_id, trip_id?, driver_id?, data}`.",
        json_schema_extra={
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/EventEnvelope"},
        },
    )
