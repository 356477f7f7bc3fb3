"""The driver's long poll for the next offer.

An open offer lives on the driver's document; the offer queue (a List) is
the wake-up: BLPOP on a dedicated client whose socket timeout exceeds the
longest wait, so a blocked poll never trips the shared pool's timeout. The
open offer is answered again until it is accepted, declined or expired, so
a response lost on the way does not lose the offer.
"""

from __future__ import annotations

import asyncio

from common import keys

from .store import DriverStore

MAX_WAIT_S = 20.0
BLOCKING_SOCKET_TIMEOUT_S = MAX_WAIT_S + 5.0
# Long polls in flight per process; more wait for a connection.
BLOCKING_POOL_SIZE = 1000
# Below this, a BLPOP is not worth a round trip (and 0 would block forever).
MIN_BLOCK_S = 0.01


class OfferPoller:
    def __init__(self, store: DriverStore, blocking_redis) -> None:
        self.store = store
        self.blocking = blocking_redis

    async def next_offer(self, driver_id: str, wait_s: float) -> dict | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait_s, MAX_WAIT_S)
        while True:
            offer = await self.store.open_offer(driver_id)
            if offer is not None:
                return offer
            remaining = deadline - loop.time()
            if remaining < MIN_BLOCK_S:
                return None
            popped = await self.blocking.blpop([keys.offers(driver_id)], timeout=remaining)
            if popped is None:
                return None
