"""The `driver-stats` consumer group: a driver's rating is the average of
the stars of `trip.rated` events, each counted once (by event id)."""

from __future__ import annotations

from common import keys
from common.streams import Entry

from .store import DriverStore


class RatingConsumer:
    def __init__(self, store: DriverStore) -> None:
        self.store = store

    async def handle(self, entry: Entry) -> None:
        if entry.type != "trip.rated":
            return
        env = entry.envelope
        driver_id = env.get("driver_id")
        stars = (env.get("data") or {}).get("stars")
        if not driver_id or stars is None:
            return
        await self.store.apply_rating(env["id"], driver_id, int(stars), keys.GROUP_DRIVER_STATS)
