"""The sweeper: deadlines are data (sorted sets scored by due time). Each
due offer and trip is expired by a script that claims its entry atomically,
so the sweeper can run in every replica at once."""

from __future__ import annotations

import asyncio
import logging

from common import keys
from common.logs import Outage
from common.tracing import new_trace_id, trace_id_var

from .dispatcher import Dispatcher
from .settings import DriverSettings
from .store import DriverStore

logger = logging.getLogger(__name__)

BATCH = 200
ERROR_BACKOFF_S = 1.0
# How often the oldest waiting trips are tried again (drivers move).
REMATCH_INTERVAL_S = 2.0


class Sweeper:
    def __init__(self, store: DriverStore, dispatcher: Dispatcher, settings: DriverSettings,
                 rematch_interval_s: float = REMATCH_INTERVAL_S) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.settings = settings
        self.rematch_interval_s = rematch_interval_s
        self._stopping = asyncio.Event()
        self._last_rematch = 0.0
        self.expired_offers = 0
        self.expired_trips = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        # The dispatcher serves the backlog on start; the net comes later.
        self._last_rematch = asyncio.get_running_loop().time()
        outage = Outage(logger, "sweep")
        while not self._stopping.is_set():
            delay = self.settings.sweep_interval_s
            try:
                await self.sweep_once()
                outage.ok()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                outage.failed(exc)
                delay = max(delay, ERROR_BACKOFF_S)
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def sweep_once(self) -> None:
        now = await self.store.server_ms()
        for region in self.settings.regions:
            r = region.name
            for trip_id in await self.store.due(keys.offer_deadlines(r), now, BATCH):
                trace_id_var.set(new_trace_id())
                if await self.store.expire_offer(trip_id) == "expired":
                    self.expired_offers += 1
            for trip_id in await self.store.due(keys.expiry_deadlines(r), now, BATCH):
                trace_id_var.set(new_trace_id())
                if await self.store.expire_trip(trip_id) == "expired":
                    self.expired_trips += 1
        loop_time = asyncio.get_running_loop().time()
        if loop_time - self._last_rematch >= self.rematch_interval_s:
            self._last_rematch = loop_time
            for region in self.settings.regions:
                trace_id_var.set(new_trace_id())
                await self.dispatcher.rematch(region.name)
