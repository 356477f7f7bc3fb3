"""Bounds on what one account can hold open in a gateway process: long polls
and live event streams (docs/security.md lists each bound, its setting and
default). A bound reached is a 429 problem with Retry-After, never a wait.

- Long polls: each driver holds at most one; a new poll ends the previous
  one (it answers 204, as if no offer came: the offer stays open on the
  driver's document and the new poll gets it). All drivers together hold at
  most `long_polls_max`, which is also the size of their own pool.
- Server-sent event streams: at most `sse_per_session` per session and
  `sse_max` in total.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter as MetricCounter
from prometheus_client import Gauge

from common import errors

from .config import GatewaySettings

LONG_POLLS = Gauge("gateway_long_polls", "Open driver long polls in this process")
LONG_POLLS_SUPERSEDED = MetricCounter(
    "gateway_long_polls_superseded_total", "Long polls ended by the same driver's next poll"
)
LIMITED = MetricCounter(
    "gateway_resource_limited_total", "Requests refused because a bound was reached", ["bound"]
)


def too_many(bound: str, detail: str, retry_after_s: int = 1) -> errors.TooManyRequests:
    LIMITED.labels(bound).inc()
    return errors.TooManyRequests(detail, headers={"Retry-After": str(retry_after_s)})


class LongPolls:
    """The open long poll of each driver in this process."""

    def __init__(self, config: GatewaySettings) -> None:
        self.limit = config.long_polls_max
        # driver id -> the future that, once set, ends that driver's open poll
        self._open: dict[str, asyncio.Future] = {}

    @property
    def count(self) -> int:
        return len(self._open)

    @contextmanager
    def hold(self, driver_id: str) -> Iterator[asyncio.Future]:
        """A driver's poll: yields a future that completes when the driver's
        next poll takes over. 429 when every slot is held by other drivers."""
        previous = self._open.pop(driver_id, None)
        if previous is not None and not previous.done():
            previous.set_result(None)
            LONG_POLLS_SUPERSEDED.inc()
        if self.limit > 0 and len(self._open) >= self.limit:
            raise too_many(
                "long_polls",
                f"The gateway holds its maximum of {self.limit} open long polls; retry shortly.",
            )
        ended = asyncio.get_running_loop().create_future()
        self._open[driver_id] = ended
        LONG_POLLS.set(len(self._open))
        try:
            yield ended
        finally:
            if self._open.get(driver_id) is ended:
                del self._open[driver_id]
            LONG_POLLS.set(len(self._open))


class SseSlots:
    """Live event streams per session and in total."""

    def __init__(self, config: GatewaySettings) -> None:
        self.per_session = config.sse_per_session
        self.total = config.sse_max
        self._by_session: Counter[str] = Counter()
        self._count = 0

    @contextmanager
    def hold(self, session: str) -> Iterator[None]:
        if self.total > 0 and self._count >= self.total:
            raise too_many(
                "sse_total",
                f"The gateway serves its maximum of {self.total} live streams; retry shortly.",
                retry_after_s=5,
            )
        if self.per_session > 0 and self._by_session[session] >= self.per_session:
            raise too_many(
                "sse_session",
                f"A session may hold at most {self.per_session} live streams at once; "
                "close one first.",
                retry_after_s=5,
            )
        self._by_session[session] += 1
        self._count += 1
        try:
            yield
        finally:
            self._count -= 1
            self._by_session[session] -= 1
            if self._by_session[session] <= 0:
                del self._by_session[session]
