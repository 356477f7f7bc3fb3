"""Live events for SSE clients.

Each gateway process reads each region's event stream once (a plain XREAD
loop, no consumer group: the gateway observes, it does not consume work) and
fans every entry out to its subscribers through bounded per-client queues.
The reader never waits for a client: a client whose queue is full is
dropped (its stream ends; it reconnects with Last-Event-ID and the trip's
event list replays what it missed), so one slow client cannot stall the
others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisClusterException, RedisError

from common import keys

from .config import GatewaySettings

logger = logging.getLogger(__name__)

READ_BACKOFF_S = 0.5
# At most a second between attempts: after a failover (about 2 s) the readers
# are back within a second of the new primary.
READ_BACKOFF_MAX_S = 1.0
# A blocked XREAD answers within its BLOCK time. The socket timeout bounds
# each attempt, but a call also includes the client's own retries and, on a
# cluster, its rediscovery of the nodes: a call not done this much later is
# abandoned (redis-py drops its connection) and the read starts again, so
# live events never stop for good.
READ_STALL_S = 5.0
READ_BATCH = 512

SSE_CLIENTS = Gauge("gateway_sse_clients", "Connected SSE clients", ["kind"])
SSE_DROPPED = Counter(
    "gateway_sse_dropped_total", "SSE clients dropped because they did not keep up"
)
EVENTS_SEEN = Counter(
    "gateway_stream_events_total", "Events read from the region streams", ["type"]
)


def parse_stream_id(value: str | None) -> tuple[int, int] | None:
    """A stream entry id as a comparable pair, or None if malformed."""
    if not value:
        return None
    ms, sep, seq = value.strip().partition("-")
    try:
        return (int(ms), int(seq) if sep else 0)
    except ValueError:
        return None


@dataclass(slots=True, frozen=True)
class StreamEvent:
    region: str
    stream_id: str
    type: str
    trip_id: str
    driver_id: str
    env: str  # the envelope as JSON text, sent to clients as it is

    @property
    def order(self) -> tuple[int, int]:
        return parse_stream_id(self.stream_id) or (0, 0)


DROPPED = object()  # in a queue: the client fell behind and is being closed


@dataclass(eq=False)
class Subscriber:
    trip_id: str | None  # None: every event
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    dropped: bool = False

    def offer(self, event: StreamEvent) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped = True
            SSE_DROPPED.inc()
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(DROPPED)

    async def next(self) -> StreamEvent | object:
        return await self.queue.get()


class EventHub:
    def __init__(self, redis, settings: GatewaySettings) -> None:
        self.redis = redis
        self.regions = [r.name for r in settings.regions]
        self.queue_size = settings.sse_queue_size
        self.block_ms = settings.stream_block_ms
        self._by_trip: dict[str, set[Subscriber]] = {}
        self._all: set[Subscriber] = set()
        self._tasks: list[asyncio.Task] = []
        self._stopping = asyncio.Event()
        self.positions: dict[str, str] = {}
        # Why the last read of a region failed; absent while reads succeed.
        self.failing: dict[str, str] = {}
        # Called with every event read, before the subscribers get it
        # (gateway/history.py); each must be quick and must not raise.
        self.observers: list = []

    # -- subscribers ---------------------------------------------------------
    def subscribe(self, trip_id: str | None) -> Subscriber:
        sub = Subscriber(trip_id, asyncio.Queue(maxsize=self.queue_size))
        if trip_id is None:
            self._all.add(sub)
        else:
            self._by_trip.setdefault(trip_id, set()).add(sub)
        SSE_CLIENTS.labels("ops" if trip_id is None else "trip").inc()
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        if sub.trip_id is None:
            if sub in self._all:
                self._all.discard(sub)
                SSE_CLIENTS.labels("ops").dec()
            return
        subs = self._by_trip.get(sub.trip_id)
        if subs and sub in subs:
            subs.discard(sub)
            SSE_CLIENTS.labels("trip").dec()
            if not subs:
                del self._by_trip[sub.trip_id]

    @property
    def client_count(self) -> int:
        return len(self._all) + sum(len(s) for s in self._by_trip.values())

    def publish(self, event: StreamEvent) -> None:
        for observe in self.observers:
            observe(event)
        for sub in tuple(self._all):
            sub.offer(event)
        if event.trip_id:
            for sub in tuple(self._by_trip.get(event.trip_id, ())):
                sub.offer(event)

    async def check(self) -> None:
        """Readiness: every region's reader runs and its last read succeeded.
        A gateway that cannot deliver live events is not ready."""
        dead = [t.get_name() for t in self._tasks if t.done()]
        if dead:
            raise RuntimeError(f"stream readers stopped: {', '.join(dead)}")
        if self.failing:
            raise RuntimeError("; ".join(f"{r}: {why}" for r, why in sorted(self.failing.items())))

    # -- readers -------------------------------------------------------------
    async def start(self) -> None:
        for region in self.regions:
            self._tasks.append(
                asyncio.create_task(self._read_region(region), name=f"stream-reader-{region}")
            )

    async def stop(self) -> None:
        # Readers notice the flag after their current XREAD BLOCK returns:
        # cancelling a blocked read mid-reply can wedge the pooled connection.
        self._stopping.set()
        grace = self.block_ms / 1000 + 2.0
        for task in self._tasks:
            try:
                await asyncio.wait_for(asyncio.shield(task), grace)
            except asyncio.TimeoutError:
                logger.warning("stream reader %s did not stop; cancelling it", task.get_name())
                task.cancel()
            except Exception:
                logger.exception("stream reader %s failed", task.get_name())
        self._tasks.clear()
        # Wake every client so its handler ends instead of waiting forever.
        for sub in [*self._all, *(s for subs in self._by_trip.values() for s in subs)]:
            sub.dropped = True
            try:
                sub.queue.put_nowait(DROPPED)
            except asyncio.QueueFull:
                pass

    async def _start_id(self, stream: str) -> str:
        """The id of the newest entry: a concrete position, so that nothing
        appended between two reads is missed (which `$` would allow)."""
        last = await self.redis.xrevrange(stream, count=1)
        return last[0][0] if last else "0-0"

    async def _read_region(self, region: str) -> None:
        stream = keys.events(region)
        backoff = READ_BACKOFF_S
        position: str | None = None
        while not self._stopping.is_set():
            try:
                if position is None:
                    position = await self._start_id(stream)
                    self.positions[region] = position
                reply = await asyncio.wait_for(
                    self.redis.xread({stream: position}, count=READ_BATCH, block=self.block_ms),
                    self.block_ms / 1000 + READ_STALL_S,
                )
                backoff = READ_BACKOFF_S
                self.failing.pop(region, None)
            except asyncio.CancelledError:
                raise
            # The reader must outlive every failure: an unreachable Redis
            # Cluster raises RedisClusterException (not a RedisError), and a
            # client rediscovering a restarted cluster may raise others.
            except Exception as exc:
                expected = isinstance(exc, (RedisError, RedisClusterException, OSError))
                logger.warning("reading %s failed (%r); retrying in %.1fs", stream, exc, backoff,
                               exc_info=not expected)
                self.failing[region] = repr(exc)[:200]
                try:
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                except asyncio.TimeoutError:
                    pass
                backoff = min(backoff * 2, READ_BACKOFF_MAX_S)
                continue
            if not reply:
                continue
            entries = reply[0][1]
            for stream_id, fields in entries:
                position = stream_id
                if not fields or "env" not in fields:
                    continue
                event = StreamEvent(
                    region,
                    stream_id,
                    fields.get("type", ""),
                    fields.get("trip_id", ""),
                    fields.get("driver_id", ""),
                    fields["env"],
                )
                EVENTS_SEEN.labels(event.type).inc()
                self.publish(event)
            self.positions[region] = position


def hub_ctx(hub: EventHub):
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    return ctx
