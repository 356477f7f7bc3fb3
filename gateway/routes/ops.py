"""Operations: the overview, analytics, the Redis topology and every event
live, for the ops role."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from common import errors, keys
from common.models import OPS_LIST_LIMIT

from .. import models
from ..api import Api, Call, Header, Response
from ..live import DROPPED, parse_stream_id
from ..sse import CLIENT_GONE, open_stream
from ..topology import TOPOLOGY
from ..upstream import Reply
from .shared import json, ok

logger = logging.getLogger(__name__)

api = Api()

OPS = ("ops",)
REPLAY_LIMIT = 1000


@api.route(
    "GET",
    "/v1/ops/overview",
    summary="The state of the system at a glance",
    tags="operations",
    roles=OPS,
    responses=ok(
        models.OpsOverview,
        "Trips, the pending queue, active trips, drivers and where they are, consumer groups.",
    ),
    errors=(503, 504),
    description="Trips by status, the pending queue in rank order with waiting times, the "
    f"active trips (at most {OPS_LIST_LIMIT:,}) (trip_service); drivers online and "
    f"available by product and the positions of the online drivers (at most "
    f"{OPS_LIST_LIMIT:,}), consumer-group lag and pending counts, dead letters, events per "
    "second over the region streams (driver_service); the regions and the timers. Both "
    "services are asked at once; a part whose service fails is listed in `missing`. 503 "
    "when neither answers.",
)
async def ops_overview(call: Call) -> web.Response:
    upstreams = call.deps.upstreams
    trips, drivers = await asyncio.gather(
        upstreams.trips.get("/internal/ops/overview"),
        upstreams.drivers.get("/internal/ops/overview"),
        return_exceptions=True,
    )
    out: dict[str, Any] = {}
    missing = []
    for name, result in (("trips", trips), ("drivers", drivers)):
        if isinstance(result, Reply) and isinstance(result.body, dict):
            for key, value in result.body.items():
                # driver_service's `drivers` summary lands under `drivers`;
                # both services report the regions and their own timers.
                out.setdefault(key, value)
        else:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result
            logger.warning("ops overview without %s: %r", name, result)
            missing.append(name)
    if len(missing) == 2:
        failure = trips if isinstance(trips, errors.AppError) else None
        raise failure or errors.Unavailable(
            "Neither service answered.", headers={"Retry-After": "1"}
        )
    # The configuration this gateway shares with the services stands in for
    # the part of a service that did not answer.
    settings = call.deps.settings
    out.setdefault("events_per_s", None)
    out.setdefault("regions", [r.as_dict() for r in settings.regions])
    out.setdefault("offer_timeout_s", settings.offer_timeout_s)
    out.setdefault("trip_expiry_s", settings.trip_expiry_s)
    out.setdefault("dispatch_radius_m", settings.dispatch_radius_m)
    out["sse_clients"] = call.deps.hub.client_count
    if missing:
        out["missing"] = missing
    return json(out)


@api.route(
    "GET",
    "/v1/ops/analytics",
    summary="Trip analytics from the cold store",
    tags="operations",
    roles=OPS,
    query=models.AnalyticsQuery,
    responses=ok(models.Analytics, "Aggregates over the archived trips of the last `days` days."),
    errors=(503, 504),
    description="SQL aggregates over the trips in trip_service's cold store (PostgreSQL): "
    "trips per day by outcome with revenue, and per product the outcomes, revenue, average "
    "rating, request-to-assigned percentiles (p50/p90/p99) and cancellations by who "
    "cancelled. Trips still hot (ended less than `HOT_RETENTION_S` ago) are not counted "
    "yet. 503 when trip_service has no cold store.",
)
async def ops_analytics(call: Call) -> web.Response:
    query: models.AnalyticsQuery = call.query
    reply = await call.deps.upstreams.trips.get(
        "/internal/ops/analytics", params={"days": str(query.days)}
    )
    return json(reply.body or {})


@api.route(
    "GET",
    "/v1/ops/topology",
    summary="Redis: shards, nodes, replication lag and failovers",
    tags="operations",
    roles=OPS,
    responses=ok(models.OpsTopology, "The topology as of the last poll, and the failovers seen."),
    description="On Redis Cluster the gateway asks every node `CLUSTER SHARDS` every "
    "`TOPOLOGY_POLL_S` (0.5 s) in the background; this route answers from the last poll "
    "and costs Redis nothing. Each shard lists its slots, the regions it holds, its "
    "primary and every node with its role, the primary it follows, its replication "
    "offset and lag in bytes, the cluster's view of its health and, for a replica, its "
    "link. `failovers` lists every change of a shard's primary this gateway process saw, "
    "with how long the shard had no primary. On one server `mode` is `one server` and "
    "there is nothing else.",
)
async def ops_topology(call: Call) -> web.Response:
    return json(call.request.app[TOPOLOGY].snapshot())


@api.route(
    "GET",
    "/v1/ops/events",
    summary="Every event of every region, live (server-sent events)",
    tags="operations",
    roles=OPS,
    headers=(
        Header(
            "Last-Event-ID",
            "Resume: events of every region after this stream entry id (by time), "
            f"at most {REPLAY_LIMIT} per region, then live ones. A value that is not a "
            "stream entry id is ignored (only live events are sent).",
            max_length=None,
        ),
    ),
    responses={
        200: Response(
            "One SSE message per event (`id:` stream entry id, `event:` type, `data:` "
            "envelope). Never ends by itself. A client that falls behind is disconnected.",
            models.SseMessage,
            content_type="text/event-stream",
        )
    },
    errors=(429,),
    description="429 with Retry-After when the session already holds SSE_PER_SESSION live "
    "streams, or the gateway SSE_MAX in total.",
)
async def ops_events(call: Call) -> web.StreamResponse:
    hub = call.deps.hub
    redis = call.deps.redis
    after = parse_stream_id(call.request.headers.get("Last-Event-ID"))
    with call.deps.sse_slots.hold(call.caller.token_hash):
        sub = hub.subscribe(None)
        try:
            async with open_stream(call) as stream:
                try:
                    await _send_all_events(stream, sub, redis, hub.regions, after)
                except CLIENT_GONE:
                    logger.debug("ops SSE client went away")
            return stream
        finally:
            hub.unsubscribe(sub)


async def _send_all_events(stream, sub, redis, regions: list[str], after) -> None:
    sent: dict[str, tuple[int, int]] = {}
    if after is not None:
        start = f"({after[0]}-{after[1]}"
        for region in regions:
            entries = await redis.xrange(keys.events(region), min=start, count=REPLAY_LIMIT)
            for stream_id, fields in entries:
                if "env" not in fields:
                    continue
                await stream.send(fields["env"], id=stream_id, event=fields.get("type"))
                sent[region] = parse_stream_id(stream_id) or (0, 0)
    while True:
        live = await sub.next()
        if live is DROPPED:
            return
        last = sent.get(live.region)
        if last is not None and live.order <= last:
            continue
        await stream.send(live.env, id=live.stream_id, event=live.type)
        sent[live.region] = live.order
