"""A trip's events: live over server-sent events, and its timeline."""

from __future__ import annotations

import asyncio
import logging

import orjson
from aiohttp import web

from common import keys
from common.events import PUBLIC_TRIP_TYPES, TERMINAL_TYPES, trip_event_items

from .. import models, serializers
from ..api import ANY_ROLE, Api, Call, Header, Response
from ..live import DROPPED, parse_stream_id
from ..sse import CLIENT_GONE, open_stream
from .shared import check_trip_id, json, load_trip, ok

logger = logging.getLogger(__name__)

api = Api()


@api.route(
    "GET",
    "/v1/trips/{id}/events",
    summary="The trip's events, live (server-sent events)",
    tags="trips",
    roles=ANY_ROLE,
    headers=(
        Header(
            "Last-Event-ID",
            "Resume after this stream entry id: only later events are sent. A value that "
            "is not a stream entry id is ignored (all events are sent).",
            max_length=None,
        ),
    ),
    responses={
        200: Response(
            "One SSE message per event: `id:` the stream entry id, `event:` the type, "
            "`data:` the envelope. Past events come first; the stream ends after a terminal "
            "event (completed, cancelled, expired). A client that falls too far behind is "
            "disconnected and should reconnect with Last-Event-ID. The rider and the "
            "assigned driver get the trip's public story (requested, assigned, "
            "driver_cancelled, driver_arrived, started, completed, cancelled, expired, "
            "rated); offers to drivers, their declines and expiries only ops sees.",
            models.SseMessage,
            content_type="text/event-stream",
        )
    },
    errors=(404, 429, 503, 504),
    description="429 with Retry-After when the session already holds SSE_PER_SESSION live "
    "streams, or the gateway SSE_MAX in total.",
)
async def trip_events(call: Call) -> web.StreamResponse:
    trip_id = check_trip_id(call.path("id"))
    trip = await load_trip(call, trip_id)
    request = call.request
    hub = call.deps.hub
    after = parse_stream_id(request.headers.get("Last-Event-ID"))
    # Subscribe before reading the past, so nothing falls between the two;
    # stream ids drop what both deliver.
    with call.deps.sse_slots.hold(call.caller.token_hash):
        sub = hub.subscribe(trip_id)
        try:
            # The view holds the request, which the list's trip.requested
            # leaves to the document.
            past = trip_event_items(
                await call.deps.redis.lrange(keys.trip_events(trip_id), 0, -1), trip_id, trip
            )
            finished = trip.get("status") in ("completed", "cancelled", "expired")
            if not past and finished:
                past = await _cold_event_items(call, trip_id)
            async with open_stream(call) as stream:
                try:
                    await _send_trip_events(
                        stream, sub, past, after, finished, call.caller.role == "ops"
                    )
                except CLIENT_GONE:
                    logger.debug("SSE client of %s went away", trip_id)
            return stream
        finally:
            hub.unsubscribe(sub)


async def _cold_event_items(call: Call, trip_id: str) -> list[dict]:
    """A finished trip no longer in Redis: its events from trip_service's
    cold store, `[{stream_id, event}]`."""
    reply = await call.deps.upstreams.trips.get(f"/internal/trips/{trip_id}/events")
    return (reply.body or {}).get("items") or []


async def _send_trip_events(stream, sub, past: list, after, finished: bool, everything: bool):
    """The past events after `after`, then live ones until a terminal event:
    all of them for ops (`everything`), the trip's public story for its rider
    and driver."""
    sent = after
    for item in past:
        event = item.get("event") or {}
        order = parse_stream_id(item.get("stream_id"))
        if event.get("type") in TERMINAL_TYPES:
            finished = True
        if order is None or (sent is not None and order <= sent):
            continue
        shown = event if everything else serializers.public_event(event)
        if shown is not None:
            await stream.send(orjson.dumps(shown).decode(), id=item["stream_id"],
                              event=event.get("type"))
        sent = order
    while not finished:
        live = await sub.next()
        if live is DROPPED:
            return
        if sent is not None and live.order <= sent:
            continue
        sent = live.order
        finished = live.type in TERMINAL_TYPES
        if everything:
            await stream.send(live.env, id=live.stream_id, event=live.type)
            continue
        if live.type not in PUBLIC_TRIP_TYPES:
            continue
        env = live.env
        if live.type == "trip.expired":
            env = orjson.dumps(serializers.public_event(orjson.loads(env))).decode()
        await stream.send(env, id=live.stream_id, event=live.type)


@api.route(
    "GET",
    "/v1/trips/{id}/timeline",
    summary="The events of the trip the caller may see",
    tags="trips",
    roles=ANY_ROLE,
    responses=ok(models.Timeline, "Events in order; for ops each with its deliveries."),
    errors=(404, 503, 504),
    description="Each event with `id, type, occurred_at, producer, trace_id`. The rider "
    "and the assigned driver see the trip's public story (requested, assigned, "
    "driver_cancelled, driver_arrived, started, completed, cancelled, expired, rated). "
    "Ops sees every event, offers to drivers included, each with `deliveries: [{group, "
    "consumer, delivered_at, acked_at, attempts}]`: the lifecycle of the message through "
    "the consumer groups. Same access as GET /v1/trips/{id}.",
)
async def trip_timeline(call: Call) -> web.Response:
    trip_id = check_trip_id(call.path("id"))
    trips = call.deps.upstreams.trips
    # The access check and the timeline at once; the timeline is only
    # returned when the check passed.
    trip, timeline = await asyncio.gather(
        load_trip(call, trip_id),
        trips.get(f"/internal/trips/{trip_id}/timeline"),
        return_exceptions=True,
    )
    for result in (trip, timeline):
        if isinstance(result, BaseException):
            raise result
    body = timeline.body or {}
    return json(
        {
            "trip_id": trip_id,
            "events": serializers.timeline_events(body.get("events", []), call.caller.role == "ops"),
        }
    )
