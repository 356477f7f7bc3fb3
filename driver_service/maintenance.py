"""Stream upkeep: consumer-group gauges for /metrics, samples of each region
stream's entries-added counter (events per second of the ops overview),
trimming of the region streams below what any group still needs (MINID,
never MAXLEN), and removal of the consumers that crashed processes left in
driver_service's groups."""

from __future__ import annotations

import asyncio
import logging

from common import keys, metrics
from common.logs import Outage
from common.settings import Settings
from common.streams import group_stats, remove_consumers, trim_stream

from .ops import sample_rates

logger = logging.getLogger(__name__)

GAUGE_INTERVAL_S = 5.0
TRIM_INTERVAL_S = 60.0
# History kept on the stream for live readers (SSE); trip timelines live in
# each trip's own event list and do not need the stream.
STREAM_RETENTION_MS = 3_600_000
# A live consumer blocks in XREADGROUP every few hundred ms, which resets its
# idle time: one idle this long belongs to a process that is gone (and were it
# alive, with nothing pending, its next read would simply recreate it).
CONSUMER_IDLE_MS = 600_000
GROUPS = (keys.GROUP_DISPATCH, keys.GROUP_DRIVER_STATS)


class StreamMaintenance:
    def __init__(self, redis, settings: Settings, *, gauge_interval_s: float = GAUGE_INTERVAL_S,
                 trim_interval_s: float = TRIM_INTERVAL_S,
                 retention_ms: int = STREAM_RETENTION_MS,
                 consumer_idle_ms: int = CONSUMER_IDLE_MS) -> None:
        self.redis = redis
        self.settings = settings
        self.gauge_interval_s = gauge_interval_s
        self.trim_interval_s = trim_interval_s
        self.retention_ms = retention_ms
        self.consumer_idle_ms = consumer_idle_ms
        self._stopping = asyncio.Event()
        self.trimmed = 0
        self.reaped = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        last_trim = loop.time()
        outage = Outage(logger, "stream maintenance")
        while not self._stopping.is_set():
            try:
                await self.update_gauges()
                if loop.time() - last_trim >= self.trim_interval_s:
                    last_trim = loop.time()
                    await self.trim_once()
                    await self.reap_once()
                outage.ok()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                outage.failed(exc)
            try:
                await asyncio.wait_for(self._stopping.wait(), self.gauge_interval_s)
            except asyncio.TimeoutError:
                pass

    async def update_gauges(self) -> None:
        for region in self.settings.regions:
            stream = keys.events(region.name)
            for g in await group_stats(self.redis, stream):
                metrics.CONSUMER_LAG.labels(stream, g["group"]).set(g["lag"] or 0)
                metrics.CONSUMER_PENDING.labels(stream, g["group"]).set(g["pending"])
        await sample_rates(self.redis, self.settings)

    async def trim_once(self, retention_ms: int | None = None) -> int:
        keep = self.retention_ms if retention_ms is None else retention_ms
        removed = 0
        for region in self.settings.regions:
            removed += await trim_stream(self.redis, keys.events(region.name), keep)
        self.trimmed += removed
        return removed

    async def reap_once(self) -> int:
        """Remove the consumers with nothing pending and idle longer than
        `consumer_idle_ms` (checked and deleted atomically). One with pending
        entries stays until other consumers have claimed them (XAUTOCLAIM):
        deleting it would leave them unclaimable."""
        removed = 0
        for region in self.settings.regions:
            stream = keys.events(region.name)
            for group in GROUPS:
                names = await remove_consumers(self.redis, stream, group,
                                               idle_ms=self.consumer_idle_ms)
                if names:
                    metrics.CONSUMERS_REMOVED.labels(group, "idle").inc(len(names))
                    logger.info("removed %d idle consumers of %s/%s: %s", len(names), stream,
                                group, ", ".join(names))
                    removed += len(names)
        self.reaped += removed
        return removed
