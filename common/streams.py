"""Durable asynchronous messaging on Redis Streams.

`StreamConsumer` runs one consumer of a consumer group on one stream:
batched XREADGROUP, acknowledgement only after the handler succeeded,
XAUTOCLAIM of entries left idle by a dead consumer (its cursor carried
forward), a dead-letter stream after `max_deliveries` failed deliveries (with
the reason, acknowledged in the same transaction), a record of every
delivery and ack per entry (the trip timeline), and a graceful stop that
finishes the batch in hand. Handlers must be idempotent: an entry can be
delivered again after a crash between its effect and its ack; the prelude's
`first_time()` and `keys.seen()` make that easy inside a script.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.exceptions import ResponseError

from . import keys, metrics
from .timeutil import now_ms

logger = logging.getLogger(__name__)

ERROR_BACKOFF_S = 0.5
ERROR_BACKOFF_MAX_S = 5.0
DELIVERY_RECORD_TTL_S = 7 * 86400


@dataclass(slots=True)
class Entry:
    stream: str
    id: str
    fields: dict[str, str]
    attempts: int = 1

    @property
    def type(self) -> str:
        return self.fields.get("type", "")

    @property
    def envelope(self) -> dict[str, Any]:
        return orjson.loads(self.fields["env"])


Handler = Callable[[Entry], Awaitable[None]]


class GroupMissing(RuntimeError):
    pass


async def ensure_group(redis, stream: str, group: str, start_id: str = "0") -> bool:
    """Create the group (and the stream) unless it exists. True if created."""
    try:
        await redis.xgroup_create(stream, group, id=start_id, mkstream=True)
        return True
    except ResponseError as exc:
        if str(exc).startswith("BUSYGROUP"):
            return False
        raise


def _next_id(stream_id: str) -> str:
    ms, seq = stream_id.split("-")
    return f"{ms}-{int(seq) + 1}"


@dataclass
class ConsumerStats:
    handled: int = 0
    failed: int = 0
    dead: int = 0
    claimed: int = 0


@dataclass
class StreamConsumer:
    redis: Any
    stream: str
    group: str
    consumer: str
    handler: Handler
    batch: int = 64
    block_ms: int = 500
    claim_idle_ms: int = 10_000
    max_deliveries: int = 5
    record_deliveries: bool = True
    stats: ConsumerStats = field(default_factory=ConsumerStats)

    def __post_init__(self) -> None:
        self.region = keys.stream_region(self.stream)
        self.dead_stream = keys.dead_letters(self.region)
        self._stopping = asyncio.Event()
        self._claim_cursor = "0-0"
        self._last_claim = 0.0

    # --- lifecycle -------------------------------------------------------
    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        """Consume until `stop()`; survive errors with a backoff."""
        await ensure_group(self.redis, self.stream, self.group)
        backoff = ERROR_BACKOFF_S
        while not self._stopping.is_set():
            try:
                await self.step()
                backoff = ERROR_BACKOFF_S
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if str(exc).startswith("NOGROUP"):
                    # The stream or group vanished (a flushed or replaced
                    # server). Recreate from the start: handlers are idempotent.
                    logger.error(
                        "consumer group %s on %s is missing; recreating it", self.group, self.stream
                    )
                    await self._sleep(backoff)
                    await ensure_group(self.redis, self.stream, self.group)
                    continue
                logger.exception("consumer %s on %s failed", self.consumer, self.stream)
                await self._sleep(backoff)
                backoff = min(backoff * 2, ERROR_BACKOFF_MAX_S)
            except Exception:
                logger.exception("consumer %s on %s failed", self.consumer, self.stream)
                await self._sleep(backoff)
                backoff = min(backoff * 2, ERROR_BACKOFF_MAX_S)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    # --- one iteration ---------------------------------------------------
    async def step(self) -> int:
        """Reclaim idle entries when due, else read new ones; handle a batch."""
        loop_time = asyncio.get_running_loop().time()
        if (loop_time - self._last_claim) * 1000 >= max(self.claim_idle_ms / 2, 50):
            self._last_claim = loop_time
            claimed = await self.reclaim()
            if claimed:
                return claimed
        reply = await self.redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=self.batch, block=self.block_ms
        )
        if not reply:
            return 0
        entries = [Entry(self.stream, sid, fields) for sid, fields in reply[0][1] if fields]
        await self._handle_batch(entries)
        return len(entries)

    async def reclaim(self) -> int:
        """Take over entries idle longer than `claim_idle_ms` (XAUTOCLAIM)."""
        reply = await self.redis.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id=self._claim_cursor,
            count=self.batch,
        )
        cursor, claimed = reply[0], reply[1]
        self._claim_cursor = cursor
        entries = [Entry(self.stream, sid, fields) for sid, fields in claimed if fields]
        if not entries:
            return 0
        counts = await self.redis.xpending_range(
            self.stream,
            self.group,
            min=entries[0].id,
            max=entries[-1].id,
            count=len(entries) * 4 + 16,
            consumername=self.consumer,
        )
        by_id = {p["message_id"]: p["times_delivered"] for p in counts}
        for entry in entries:
            entry.attempts = by_id.get(entry.id, 1)
        self.stats.claimed += len(entries)
        logger.info("reclaimed %d idle entries of %s/%s", len(entries), self.stream, self.group)
        await self._handle_batch(entries)
        return len(entries)

    async def _handle_batch(self, entries: list[Entry]) -> None:
        now = now_ms()
        if self.record_deliveries:
            async with self.redis.pipeline(transaction=False) as pipe:
                for entry in entries:
                    record = {"consumer": self.consumer, "attempts": entry.attempts,
                              "delivered_at": now}
                    self._record(pipe, entry, "", orjson.dumps(record))
                await pipe.execute()
        done: list[Entry] = []
        for entry in entries:
            if entry.attempts > self.max_deliveries:
                await self.dead_letter(
                    entry, f"delivered {entry.attempts} times without an acknowledgement"
                )
                continue
            try:
                await self.handler(entry)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.failed += 1
                metrics.EVENTS_CONSUMED.labels(self.group, "failed").inc()
                reason = f"{type(exc).__name__}: {exc}"[:500]
                logger.warning(
                    "handler failed on %s %s (attempt %d): %s",
                    self.stream,
                    entry.id,
                    entry.attempts,
                    reason,
                    exc_info=entry.attempts >= self.max_deliveries,
                )
                if entry.attempts >= self.max_deliveries:
                    await self.dead_letter(entry, reason)
                elif self.record_deliveries:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        self._record(pipe, entry, "error", reason)
                        await pipe.execute()
                continue
            done.append(entry)
        if done:
            await self._ack(done)

    async def _ack(self, entries: list[Entry]) -> None:
        now = now_ms()
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(self.stream, self.group, *[e.id for e in entries])
            if self.record_deliveries:
                for entry in entries:
                    self._record(pipe, entry, "acked_at", now)
            await pipe.execute()
        self.stats.handled += len(entries)
        metrics.EVENTS_CONSUMED.labels(self.group, "acked").inc(len(entries))

    def _record(self, target, entry: Entry, suffix: str, value) -> None:
        """One hash per entry; fields `group|attempt` (the delivery) and
        `group|attempt|acked_at` or `|error`, so redeliveries keep their history."""
        key = keys.deliveries(self.region, entry.id)
        name = f"{self.group}|{entry.attempts}"
        target.hset(key, f"{name}|{suffix}" if suffix else name, value)
        target.expire(key, DELIVERY_RECORD_TTL_S)

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        """Move an entry to the dead-letter stream and ack it, atomically."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(
                self.dead_stream,
                {
                    **entry.fields,
                    "source_stream": self.stream,
                    "source_id": entry.id,
                    "group": self.group,
                    "consumer": self.consumer,
                    "attempts": str(entry.attempts),
                    "reason": reason,
                    "dead_at": str(now_ms()),
                },
            )
            pipe.xack(self.stream, self.group, entry.id)
            if self.record_deliveries:
                pipe.hset(
                    keys.deliveries(self.region, entry.id),
                    f"{self.group}|dead",
                    orjson.dumps({"reason": reason, "attempts": entry.attempts}),
                )
            await pipe.execute()
        self.stats.dead += 1
        metrics.DEAD_LETTERS.labels(self.group).inc()
        logger.error(
            "dead-lettered %s %s after %d deliveries: %s",
            self.stream,
            entry.id,
            entry.attempts,
            reason,
        )


async def read_deliveries(redis, region: str, stream_id: str) -> list[dict]:
    """The deliveries of one entry, oldest first:
    [{group, consumer, delivered_at, acked_at, attempts, error?}] (times in ms)."""
    raw = await redis.hgetall(keys.deliveries(region, stream_id))
    out = []
    for name, value in raw.items():
        parts = name.split("|")
        if len(parts) != 2 or parts[1] == "dead":
            continue
        record = orjson.loads(value)
        record["group"] = parts[0]
        acked = raw.get(f"{name}|acked_at")
        record["acked_at"] = int(acked) if acked else None
        error = raw.get(f"{name}|error")
        if error:
            record["error"] = error
        out.append(record)
    out.sort(key=lambda r: (r["group"], r["attempts"]))
    return out


async def group_stats(redis, stream: str) -> list[dict]:
    """Lag and pending count of every group on a stream (XINFO GROUPS)."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return []
    return [
        {
            "stream": stream,
            "group": g["name"],
            "consumers": g["consumers"],
            "pending": g["pending"],
            "lag": g.get("lag"),
            "last_delivered_id": g["last-delivered-id"],
        }
        for g in groups
    ]


async def safe_trim_id(redis, stream: str) -> str | None:
    """The lowest id still needed by any group: pending or not yet read."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return None
    floor: str | None = None

    def lower(a: str | None, b: str) -> str:
        if a is None:
            return b
        am, aseq = (int(x) for x in a.split("-"))
        bm, bseq = (int(x) for x in b.split("-"))
        return a if (am, aseq) <= (bm, bseq) else b

    for g in groups:
        candidate = _next_id(g["last-delivered-id"])
        if g["pending"]:
            summary = await redis.xpending(stream, g["name"])
            if summary and summary.get("min"):
                candidate = lower(candidate, summary["min"])
        floor = lower(floor, candidate)
    return floor


async def trim_stream(redis, stream: str, keep_ms: int) -> int:
    """XTRIM MINID below both the groups' floor and the retention window,
    never by a bare MAXLEN that could drop work not yet done."""
    retention = f"{max(now_ms() - keep_ms, 0)}-0"
    floor = await safe_trim_id(redis, stream)
    minid = retention
    if floor is not None:
        fm, fs = (int(x) for x in floor.split("-"))
        rm = int(retention.split("-")[0])
        if (fm, fs) < (rm, 0):
            minid = floor
    return await redis.xtrim(stream, minid=minid, approximate=False)
