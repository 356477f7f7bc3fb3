"""Hot to cold: finished trips leave Redis for the cold store.

Two parts, both safe in every trip_service replica:

- `ArchiveScheduler`, the handler of the `archive` consumer group: a trip's
  terminal event (completed, cancelled, expired) puts the trip in the
  region's `archive_due` sorted set, due HOT_RETENTION_S after it ended
  (ZADD NX: a redelivered event changes nothing).
- `Archiver`, a loop: claims a batch of due trips (a lease in the same sorted
  set, so replicas take different trips), reads each trip's document, its
  events and their delivery records, copies the batch to PostgreSQL in one
  transaction (upserts by trip id and event id), and only after the commit
  removes each trip from Redis with `drop_archived_trip`, which checks that
  the trip did not change since it was read.

Kill -9 anywhere: before the commit nothing is lost (the trip is still hot
and due again when its lease ends); after it, the trip is in both places
until the next pass drops it; a copy repeated is an upsert. A trip is held
back while any of its stream entries is still pending or unread in some
group: its delivery records and idempotency marks go with it, and must not
go while a redelivery could still need them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable

import orjson
from prometheus_client import Counter, Gauge
from redis.exceptions import OutOfMemoryError

from common import ids, keys
from common.events import trip_event_items
from common.scripts import Scripts
from common.streams import Entry, read_deliveries, safe_trim_id
from common.timeutil import now_ms, parse_iso

from . import scripts as S
from .coldstore import ColdStore, HotCopy
from .settings import TripSettings

logger = logging.getLogger(__name__)

TERMINAL_TYPES = frozenset({"trip.completed", "trip.cancelled", "trip.expired"})
ERROR_BACKOFF_S = 1.0

ARCHIVED = Counter("trips_archived_total", "Finished trips moved to the cold store")
ARCHIVE_RESULTS = Counter(
    "archive_results_total", "Archiver outcomes per trip", ["result"]
)
ARCHIVE_DUE = Gauge("archive_due_trips", "Finished trips due to go cold and still hot")


def _seq(stream_id: str) -> tuple[int, int]:
    ms, seq = stream_id.split("-")
    return int(ms), int(seq)


class ArchiveScheduler:
    """The `archive` group's handler: when a trip ends, its day in Redis starts."""

    def __init__(self, redis, settings: TripSettings) -> None:
        self.redis = redis
        self.retention_ms = int(settings.hot_retention_s * 1000)

    async def handle(self, entry: Entry) -> None:
        if entry.type not in TERMINAL_TYPES:
            return
        env = entry.envelope
        trip_id = env.get("trip_id")
        if not trip_id or not ids.is_id(trip_id, ids.TRIP):
            return
        due = parse_iso(env["occurred_at"]) + self.retention_ms
        await self.redis.zadd(keys.archive_due(ids.region_of(trip_id)), {trip_id: due}, nx=True)


class Archiver:
    """The loop that moves due trips to the cold store (one per process)."""

    def __init__(
        self, redis, scripts: Scripts, cold: ColdStore, settings: TripSettings,
        *, before_drop: Callable[[list[HotCopy]], Awaitable[None]] | None = None,
    ) -> None:
        self.redis = redis
        self.scripts = scripts
        self.cold = cold
        self.settings = settings
        self.lease_ms = int(settings.archive_lease_s * 1000)
        # Tests stop here (between the commit and the drops) to crash the process.
        self.before_drop = before_drop
        self._stopping = asyncio.Event()
        self.archived = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            try:
                moved = await self.pass_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("archive pass failed")
                moved = 0
                await self._sleep(ERROR_BACKOFF_S)
            if moved < self.settings.archive_batch:
                await self._sleep(self.settings.archive_interval_s)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    async def pass_once(self) -> int:
        """One batch per region; the number of trips that left Redis."""
        moved = 0
        due_total = 0
        for region in self.settings.regions:
            moved += await self._region_pass(region.name)
            due_total += await self.redis.zcount(keys.archive_due(region.name), "-inf", now_ms())
        ARCHIVE_DUE.set(due_total)
        return moved

    async def _claim(self, region: str) -> list[str]:
        due_key = keys.archive_due(region)
        try:
            return await self.scripts.call(
                S.CLAIM_ARCHIVE_BATCH, S.ClaimKeys.of(region),
                S.ClaimArgs(batch=self.settings.archive_batch, lease_ms=self.lease_ms),
            )
        except OutOfMemoryError:
            # A full Redis refuses the lease (a write that may grow memory),
            # but the drops free it: take the due trips without a lease. Two
            # replicas may then copy one trip twice: an upsert, and one drop.
            return list(await self.redis.zrangebyscore(
                due_key, "-inf", now_ms(), start=0, num=self.settings.archive_batch
            ))

    async def _region_pass(self, region: str) -> int:
        trip_ids = await self._claim(region)
        if not trip_ids:
            return 0
        floor = await safe_trim_id(self.redis, keys.events(region))
        async with self.redis.pipeline(transaction=False) as pipe:
            for trip_id in trip_ids:
                pipe.execute_command("JSON.GET", keys.trip(trip_id))
                pipe.lrange(keys.trip_events(trip_id), 0, -1)
            replies = await pipe.execute()
        copies: list[HotCopy] = []
        for i, trip_id in enumerate(trip_ids):
            raw, items = replies[2 * i], replies[2 * i + 1]
            if raw is None:
                # Gone already (another replica dropped it): clean the indexes.
                await self._drop(trip_id, None, [], None)
                continue
            doc = orjson.loads(raw)
            events = trip_event_items(items, trip_id, doc)
            if doc.get("status") not in ("completed", "cancelled", "expired"):
                logger.error("trip %s is due to go cold but is %s", trip_id, doc.get("status"))
                ARCHIVE_RESULTS.labels("not_finished").inc()
                continue
            if floor is not None and any(_seq(e["stream_id"]) >= _seq(floor) for e in events):
                # A group has not acknowledged all of its events yet: later.
                ARCHIVE_RESULTS.labels("held_back").inc()
                continue
            deliveries = await asyncio.gather(
                *(read_deliveries(self.redis, region, e["stream_id"]) for e in events)
            )
            copies.append(HotCopy(raw, doc, events, list(deliveries)))
        if not copies:
            return 0
        await self.cold.copy(copies)
        if self.before_drop is not None:
            await self.before_drop(copies)
        moved = 0
        for copy in copies:
            if await self._drop(copy.doc["id"], copy.raw, copy.events, copy.doc):
                moved += 1
        self.archived += moved
        ARCHIVED.inc(moved)
        return moved

    async def _drop(self, trip_id: str, raw: str | None, events: list[dict],
                    doc: dict | None) -> bool:
        """The trip's keys and index entries out of Redis, if unchanged."""
        reply = await self.scripts.call(
            S.DROP_ARCHIVED_TRIP,
            S.DropKeys.of(trip_id, (doc or {}).get("rider_id"), (doc or {}).get("driver_id"),
                          events),
            S.DropArgs(trip_id=trip_id, sha1=hashlib.sha1(raw.encode()).hexdigest() if raw else "",
                       events=len(events)),
        )
        result = reply.result
        ARCHIVE_RESULTS.labels(result).inc()
        if result == "changed":
            logger.info("trip %s changed while it was copied; copied again next pass", trip_id)
        return result == "dropped"


async def archive_status(redis, settings: TripSettings) -> dict:
    """For ops: trips due to go cold and how late the oldest is."""
    now = now_ms()
    due = 0
    oldest: float | None = None
    for region in settings.regions:
        key = keys.archive_due(region.name)
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zcount(key, "-inf", now)
            pipe.zrange(key, 0, 0, withscores=True)
            count, first = await pipe.execute()
        due += count
        if count and first:
            score = first[0][1]
            oldest = score if oldest is None else min(oldest, score)
    return {
        "due": due,
        "lag_s": round(max(now - oldest, 0) / 1000, 1) if oldest is not None else 0.0,
        "hot_retention_s": settings.hot_retention_s,
    }
