"""`StreamConsumer`: one consumer of a consumer group on one stream.

Batched XREADGROUP, acknowledgement only after the handler succeeded,
XAUTOCLAIM of entries left idle by a dead consumer (its cursor carried
forward), a dead-letter stream after `max_deliveries` failed deliveries (with
the reason, acknowledged in the same transaction), a record of every
delivery and ack per entry (`deliveries`), and a graceful stop that finishes
the batch in hand and then leaves the group (XGROUP DELCONSUMER, only with
nothing pending; `admin.remove_consumers`). Handlers must be idempotent: an
entry can be delivered again after a crash between its effect and its ack;
the prelude's `first_time()` and `keys.seen()` make that easy inside a script.

On a standalone server `run()` reads and acks on a connection of its own
(`entries.ConsumerPipe`): while a busy stream's batch is handled the next
read is already on the wire, and the batch's ack goes out with the read
after it, its reply taken with the next batch's. The delivery records go out
on it too, before the handler runs, and the ack records with the ack: the
handler waits for none of them (on a durable server, for none of their
fsyncs). Redis Cluster clients take the pool path (a read ahead, each
record and ack awaited).

With `ordered_by` (the keys an entry must keep its order with, e.g. its
trip and its driver), the entries of a batch that share no key are handled
at once, so their writes share the server's fsyncs; entries of one key are
handled in stream order, each after the one before it is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .. import keys, metrics
from ..logs import Outage
from ..timeutil import now_ms
from . import deliveries
from .admin import ensure_group, remove_consumers
from .entries import ConsumerPipe, Entry, Handler, read_lean, xack_packed

logger = logging.getLogger(__name__)

ERROR_BACKOFF_S = 0.5
ERROR_BACKOFF_MAX_S = 5.0
UNREACHABLE_BACKOFF_MAX_S = 1.0
# Errors of a server that is down, hung or failing over (not of our code).
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, RedisClusterException, OSError)


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
    # The keys an entry must be handled in order with (e.g. its trip and its
    # driver): the entries of a batch that share none are handled at once,
    # so their writes share the server's fsyncs. None: one after another.
    ordered_by: Callable[[Entry], Iterable[str]] | None = None
    stats: ConsumerStats = field(default_factory=ConsumerStats)

    def __post_init__(self) -> None:
        self.region = keys.stream_region(self.stream)
        self.dead_stream = keys.dead_letters(self.region)
        self._stopping = asyncio.Event()
        self._claim_cursor = "0-0"
        self._last_claim = 0.0
        # The batch read ahead while the one in hand is handled (busy streams only).
        self._ahead: asyncio.Future | None = None
        # A standalone redis-py client takes the lean read path: the reply of
        # XREADGROUP as hiredis parsed it, without redis-py's per-entry
        # conversion (a command name given as bytes has no response callback).
        # Other clients (Redis Cluster) go through their own xreadgroup().
        self._lean = isinstance(self.redis, AsyncRedis)
        self._decode = self._lean and bool(
            self.redis.connection_pool.connection_kwargs.get("decode_responses")
        )
        self._acked = metrics.EVENTS_CONSUMED.labels(self.group, "acked")
        # run() on a standalone client: reads and acks on a connection of
        # the consumer's own, written without waiting for their replies.
        self._pipe: ConsumerPipe | None = None

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
        # One line when Redis goes, one when it is back (self.outage: for tests).
        outage = self.outage = Outage(logger, f"consumer {self.consumer} on {self.stream}")
        if self._lean:
            self._pipe = ConsumerPipe(self.redis, self.stream, self.group, self.consumer,
                                      self.batch, self.block_ms, self._decode, self._confirmed)
        step = self._step_piped if self._pipe is not None else self._step_ahead
        try:
            while not self._stopping.is_set():
                try:
                    await step()
                    backoff = ERROR_BACKOFF_S
                    outage.ok()
                except asyncio.CancelledError:
                    raise
                except ResponseError as exc:
                    if str(exc).startswith("NOGROUP"):
                        # The stream or group vanished (a flushed or replaced
                        # server). Recreate from the start: handlers are idempotent.
                        logger.error(
                            "consumer group %s on %s is missing; recreating it",
                            self.group,
                            self.stream,
                        )
                        await self._sleep(backoff)
                        await ensure_group(self.redis, self.stream, self.group)
                        continue
                    logger.exception("consumer %s on %s failed", self.consumer, self.stream)
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, ERROR_BACKOFF_MAX_S)
                except UNREACHABLE as exc:
                    # A failover or a restart: the client finds the new
                    # primary; try again within a second of it. Logged once
                    # when it goes and once when it is back.
                    outage.failed(exc)
                    await self._sleep(min(backoff, UNREACHABLE_BACKOFF_MAX_S))
                    backoff = min(backoff * 2, ERROR_BACKOFF_MAX_S)
                except Exception as exc:
                    outage.failed(exc)
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, ERROR_BACKOFF_MAX_S)
        except asyncio.CancelledError:
            # Entries read ahead stay pending for this consumer name and are
            # reclaimed by idle time, like those of a consumer that died.
            if self._ahead is not None:
                self._ahead.cancel()
                self._ahead = None
            if self._pipe is not None:
                await self._pipe.reset()
                self._pipe = None
            raise
        # Stopped: finish what is in hand, the batch read ahead included.
        if self._pipe is not None:
            try:
                await self._settle()
            finally:
                await self._pipe.reset()
                self._pipe = None
        else:
            await self._finish_ahead()
        await self._leave_group()

    async def _leave_group(self) -> None:
        """Remove this consumer from its group, unless entries are still
        pending for it: those stay claimable by idle time, and the consumer
        goes with them (the stream maintenance reaps it once they are claimed)."""
        try:
            if await remove_consumers(self.redis, self.stream, self.group, name=self.consumer):
                metrics.CONSUMERS_REMOVED.labels(self.group, "stopped").inc()
        except Exception:
            # A stop must not fail for it: the leftover consumer is reaped later.
            logger.warning("consumer %s could not leave %s/%s", self.consumer, self.stream,
                           self.group, exc_info=True)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except asyncio.TimeoutError:
            pass

    # --- one iteration ---------------------------------------------------
    def _claim_due(self) -> bool:
        loop_time = asyncio.get_running_loop().time()
        if (loop_time - self._last_claim) * 1000 >= max(self.claim_idle_ms / 2, 50):
            self._last_claim = loop_time
            return True
        return False

    async def step(self) -> int:
        """Reclaim idle entries when due, else read new ones; handle a batch."""
        if self._claim_due():
            claimed = await self.reclaim()
            if claimed:
                return claimed
        entries = await self._read()
        if not entries:
            return 0
        await self._handle_batch(entries)
        return len(entries)

    async def _step_ahead(self) -> int:
        """`step()`, reading the next batch while a full one is handled, so
        the server prepares it while this process works (busy streams)."""
        if self._claim_due():
            await self._finish_ahead()
            claimed = await self.reclaim()
            if claimed:
                return claimed
        ahead, self._ahead = self._ahead, None
        entries = await (ahead if ahead is not None else self._read())
        if not entries:
            return 0
        if len(entries) >= self.batch and not self._stopping.is_set():
            # Without BLOCK: an empty answer costs nothing, the next step
            # then blocks as usual, and a stop never waits on it.
            self._ahead = asyncio.ensure_future(self._read(block=False))
        await self._handle_batch(entries)
        return len(entries)

    async def _step_piped(self) -> int:
        """`_step_ahead()` on the consumer's pipe. While a full batch is
        handled, the read of the next is on the wire (with the batch's
        delivery records); after it, its ack (with its records) and the read
        after next are written together (one write; on a durable server, one
        fsync for all). No reply is awaited but the one of the read whose
        entries come next."""
        pipe = self._pipe
        if self._claim_due():
            await self._settle()
            claimed = await self.reclaim()
            if claimed:
                return claimed
        if not pipe.reading:
            await pipe.send(read=True, block=True)
        entries = await pipe.take()
        if not entries:
            return 0
        # Without BLOCK: an empty answer costs nothing, the next step then
        # blocks as usual, and a stop never waits on it.
        ahead = len(entries) >= self.batch and not self._stopping.is_set()
        # The delivery records go out with the read ahead, unawaited: the
        # handler does not wait for their fsync, and they reach the server
        # before anything the handler writes.
        await pipe.send(writes=self._delivery_records(entries),
                        read=ahead and not pipe.reading)
        done = await self._handle(entries, recorded=True)
        # The ack (and its records) with the next read: confirmed when that
        # read's reply is taken; lost with the connection, it is redelivered.
        await pipe.send(ack=[e.id for e in done], writes=self._ack_records(done),
                        read=ahead and not self._stopping.is_set())
        return len(entries)

    async def _settle(self) -> None:
        """Take every reply the pipe still owes: handle the entries of a
        read in flight (and ack them), confirm the acks."""
        pipe = self._pipe
        while pipe.owing:
            try:
                entries = await pipe.take()
                if entries:
                    await self._handle_batch(entries)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Left pending; reclaimed by idle time.
                logger.exception("consumer %s on %s failed", self.consumer, self.stream)
                return

    def _confirmed(self, count: int) -> None:
        self.stats.handled += count
        self._acked.inc(count)

    async def _finish_ahead(self) -> None:
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return
        try:
            entries = await ahead
            if entries:
                await self._handle_batch(entries)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Left pending; reclaimed by idle time.
            logger.exception("consumer %s on %s failed", self.consumer, self.stream)

    async def _read(self, block: bool = True) -> list[Entry]:
        """New entries for this consumer (XREADGROUP >), oldest first."""
        stream = self.stream
        if self._lean:
            return await read_lean(self.redis, stream, self.group, self.consumer, self.batch,
                                   self.block_ms if block else None, self._decode)
        reply = await self.redis.xreadgroup(
            self.group, self.consumer, {stream: ">"}, count=self.batch,
            block=self.block_ms if block else None,
        )
        if not reply:
            return []
        rows = next(iter(reply.values()))[0] if isinstance(reply, dict) else reply[0][1]
        return [Entry(stream, sid, fields) for sid, fields in rows if fields]

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
        done = await self._handle(entries)
        if done:
            await self._ack(done)

    async def _handle(self, entries: list[Entry], recorded: bool = False) -> list[Entry]:
        """Record the deliveries (unless `recorded`), run the handler on each
        entry; the entries to acknowledge (the failed and the dead-lettered
        are not)."""
        if self.record_deliveries and not recorded:
            if self._pipe is not None:
                await self._pipe.send(writes=self._delivery_records(entries))
            else:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for args in self._delivery_records(entries):
                        pipe.execute_command(*args)
                    await pipe.execute()
        if self.ordered_by is not None and len(entries) > 1:
            ok = await self._handle_concurrently(entries)
            return [e for e, acked in zip(entries, ok) if acked]
        # One after another, kept lean: a busy stream's batch is thousands.
        handler = self.handler
        max_deliveries = self.max_deliveries
        # ids of the entries not to acknowledge now (failed, or dead-lettered
        # with their own ack); None while every entry succeeds.
        skipped: set[str] | None = None
        for entry in entries:
            if entry.attempts <= max_deliveries:
                try:
                    await handler(entry)
                    continue
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    await self._failed(entry, exc)
            else:
                await self._dead_letter_overdelivered(entry)
            skipped = skipped or set()
            skipped.add(entry.id)
        return entries if skipped is None else [e for e in entries if e.id not in skipped]

    async def _handle_concurrently(self, entries: list[Entry]) -> list[bool]:
        """`_handle_one` on every entry, each as soon as the entries before
        it that share one of its keys (`ordered_by`) are done."""
        last: dict[str, asyncio.Task] = {}
        tasks = []
        for entry in entries:
            keys_ = list(self.ordered_by(entry))
            before = {last[k] for k in keys_ if k in last}
            task = asyncio.ensure_future(self._handle_after(before, entry))
            for k in keys_:
                last[k] = task
            tasks.append(task)
        # Every entry's outcome first: a failure (the server gone) must not
        # leave the others running unowned.
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return outcomes

    async def _handle_after(self, before: set[asyncio.Task], entry: Entry) -> bool:
        if before:
            await asyncio.wait(before)
        return await self._handle_one(entry)

    async def _handle_one(self, entry: Entry) -> bool:
        """The handler on one entry (dead-lettered past `max_deliveries`):
        whether to acknowledge it now."""
        if entry.attempts > self.max_deliveries:
            await self._dead_letter_overdelivered(entry)
            return False
        try:
            await self.handler(entry)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._failed(entry, exc)
            return False
        return True

    async def _dead_letter_overdelivered(self, entry: Entry) -> None:
        await self.dead_letter(
            entry, f"delivered {entry.attempts} times without an acknowledgement"
        )

    async def _failed(self, entry: Entry, exc: Exception) -> None:
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
                for args in self._record(entry, "error", reason):
                    pipe.execute_command(*args)
                await pipe.execute()

    async def _ack(self, entries: list[Entry]) -> None:
        ids = [e.id for e in entries]
        if self._pipe is not None:
            # Confirmed (and counted) when the next reply is taken.
            await self._pipe.send(ack=ids, writes=self._ack_records(entries))
            return
        if self.record_deliveries:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.xack(self.stream, self.group, *ids)
                for args in self._ack_records(entries):
                    pipe.execute_command(*args)
                await pipe.execute()
        elif self._lean:
            await xack_packed(self.redis, self.stream, self.group, ids)
        else:
            await self.redis.xack(self.stream, self.group, *ids)
        self.stats.handled += len(ids)
        self._acked.inc(len(ids))

    def _delivery_records(self, entries: list[Entry]) -> list[tuple]:
        """The commands recording the delivery of `entries` (none without
        `record_deliveries`)."""
        if not self.record_deliveries:
            return []
        now = now_ms()
        out: list[tuple] = []
        for entry in entries:
            record = {"consumer": self.consumer, "attempts": entry.attempts,
                      "delivered_at": now}
            out += self._record(entry, "", orjson.dumps(record))
        return out

    def _ack_records(self, entries: list[Entry]) -> list[tuple]:
        if not self.record_deliveries:
            return []
        now = now_ms()
        out: list[tuple] = []
        for entry in entries:
            out += self._record(entry, "acked_at", now)
        return out

    def _record(self, entry: Entry, suffix: str, value) -> tuple[tuple, tuple]:
        name = f"{self.group}|{entry.attempts}"
        return deliveries.record_commands(self.region, entry.id,
                                          f"{name}|{suffix}" if suffix else name, value)

    async def dead_letter(self, entry: Entry, reason: str) -> None:
        """Move an entry to the dead-letter stream and ack it, atomically."""
        await deliveries.dead_letter(self.redis, self.dead_stream, self.stream, self.group,
                                     self.consumer, entry, reason, self.record_deliveries)
        self.stats.dead += 1
        metrics.DEAD_LETTERS.labels(self.group).inc()
        logger.error(
            "dead-lettered %s %s after %d deliveries: %s",
            self.stream,
            entry.id,
            entry.attempts,
            reason,
        )
