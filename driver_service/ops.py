"""The operations overview of driver_service."""

from __future__ import annotations

from redis.exceptions import ResponseError

from common import keys
from common.settings import Settings
from common.streams import group_stats
from common.fares import PRODUCTS


async def overview(redis, settings: Settings) -> dict:
    drivers = {p: {"online": 0, "available": 0} for p in PRODUCTS}
    open_offers = 0
    groups: list[dict] = []
    dead_letters = 0
    streams = []
    for region in settings.regions:
        r = region.name
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.drivers_online(r))
            for p in PRODUCTS:
                pipe.zcard(keys.geo(r, p))
            pipe.zcard(keys.offer_deadlines(r))
            pipe.xlen(keys.dead_letters(r))
            replies = await pipe.execute()
        online = replies[0]
        for i, p in enumerate(PRODUCTS):
            drivers[p]["online"] += int(online.get(p, 0))
            drivers[p]["available"] += replies[1 + i]
        open_offers += replies[1 + len(PRODUCTS)]
        dead_letters += replies[2 + len(PRODUCTS)]
        stream = keys.events(r)
        groups += await group_stats(redis, stream)
        try:
            info = await redis.xinfo_stream(stream)
            streams.append({
                "stream": stream,
                "length": info["length"],
                "entries_added": info.get("entries-added"),
                "last_id": info.get("last-generated-id"),
            })
        except ResponseError:
            streams.append({"stream": stream, "length": 0, "entries_added": 0, "last_id": None})
    return {
        "drivers": drivers,
        "open_offers": open_offers,
        "consumer_groups": groups,
        "dead_letters": dead_letters,
        "streams": streams,
    }
