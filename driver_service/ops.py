"""The operations overview of driver_service: drivers by product and where
the online ones are, open offers, consumer groups, dead letters, the region
streams and their events per second."""

from __future__ import annotations

import orjson
from redis.exceptions import ResponseError

from common import ids, keys
from common.fares import PRODUCTS
from common.models import OPS_LIST_LIMIT
from common.settings import Settings
from common.streams import group_stats

# Driver documents read per JSON.MGET.
MGET_BATCH = 500
# Events per second: entries added to a region stream since the newest sample
# at least this old (samples shared in Redis by every replica, kept a minute).
RATE_WINDOW_MS = 10_000
RATE_MIN_SPAN_MS = 1_000
RATE_KEEP_MS = 60_000


async def server_ms(redis) -> int:
    seconds, micros = await redis.time()
    return seconds * 1000 + micros // 1000


def position(doc: dict) -> dict | None:
    """An online driver on the map: None unless online and located."""
    if doc.get("status") != "online" or not doc.get("location"):
        return None
    loc = doc["location"]
    item = {
        "driver_id": doc["id"],
        "region": ids.region_of(doc["id"]),
        "product": doc["product"],
        "status": "available",
        "location": {"lat": loc["lat"], "lon": loc["lon"]},
    }
    if loc.get("heading") is not None:
        item["location"]["heading"] = loc["heading"]
    if loc.get("updated_at"):
        item["location"]["updated_at"] = loc["updated_at"]
    if doc.get("trip_id"):
        item["status"] = "on_trip"
        item["trip_id"] = doc["trip_id"]
    elif doc.get("offer"):
        item["status"] = "offered"
        item["trip_id"] = doc["offer"]["trip_id"]
    return item


async def driver_positions(redis, driver_ids: list[str]) -> list[dict]:
    """Positions of online drivers of one region, JSON.MGET in batches."""
    out = []
    for start in range(0, len(driver_ids), MGET_BATCH):
        batch = driver_ids[start : start + MGET_BATCH]
        raws = await redis.execute_command("JSON.MGET", *[keys.driver(d) for d in batch], "$")
        for raw in raws:
            if raw:
                item = position(orjson.loads(raw)[0])
                if item is not None:
                    out.append(item)
    return out


def _sample(member: str) -> tuple[int, int]:
    ms, added = member.split(":")
    return int(ms), int(added)


async def stream_rate(redis, region: str, now: int, added: int | None) -> float | None:
    """Events per second on a region stream over about the last
    RATE_WINDOW_MS, from samples of its entries-added counter kept in Redis;
    records this sample. None until an earlier sample exists."""
    rate_key = keys.events_rate(region)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zrevrangebyscore(rate_key, now - RATE_WINDOW_MS, "-inf", start=0, num=1)
        pipe.zrangebyscore(rate_key, "-inf", now - RATE_MIN_SPAN_MS, start=0, num=1)
        if added is not None:
            pipe.zadd(rate_key, {f"{now}:{added}": now})
            pipe.zremrangebyscore(rate_key, "-inf", now - RATE_KEEP_MS)
        replies = await pipe.execute()
    base = replies[0] or replies[1]
    if added is None or not base:
        return None
    base_ms, base_added = _sample(base[0])
    if now <= base_ms or added < base_added:
        return None
    return (added - base_added) * 1000 / (now - base_ms)


async def entries_added(redis, stream: str) -> dict:
    try:
        info = await redis.xinfo_stream(stream)
    except ResponseError:
        return {"stream": stream, "length": 0, "entries_added": 0, "last_id": None}
    return {
        "stream": stream,
        "length": info["length"],
        "entries_added": info.get("entries-added"),
        "last_id": info.get("last-generated-id"),
    }


async def sample_rates(redis, settings: Settings) -> None:
    """A sample per region stream, so that a rate is at hand when asked."""
    now = await server_ms(redis)
    for region in settings.regions:
        stream = await entries_added(redis, keys.events(region.name))
        await stream_rate(redis, region.name, now, stream["entries_added"])


async def overview(redis, settings: Settings, locations_limit: int = OPS_LIST_LIMIT) -> dict:
    drivers: dict = {p: {"online": 0, "available": 0} for p in PRODUCTS}
    locations: list[dict] = []
    locations_total = 0
    open_offers = 0
    groups: list[dict] = []
    dead_letters = 0
    streams = []
    rate: float | None = None
    now = await server_ms(redis)
    for region in settings.regions:
        r = region.name
        room = locations_limit - len(locations)
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.online_driver_counts(r))
            for p in PRODUCTS:
                pipe.zcard(keys.geo(r, p))
            pipe.zcard(keys.offer_deadlines(r))
            pipe.xlen(keys.dead_letters(r))
            pipe.zcard(keys.online_driver_ids(r))
            if room > 0:
                pipe.zrange(keys.online_driver_ids(r), 0, room - 1)
            replies = await pipe.execute()
        online = replies[0]
        n = len(PRODUCTS)
        for i, p in enumerate(PRODUCTS):
            drivers[p]["online"] += int(online.get(p, 0))
            drivers[p]["available"] += replies[1 + i]
        open_offers += replies[1 + n]
        dead_letters += replies[2 + n]
        locations_total += replies[3 + n]
        if room > 0:
            locations += await driver_positions(redis, replies[4 + n])
        stream = keys.events(r)
        groups += await group_stats(redis, stream)
        info = await entries_added(redis, stream)
        streams.append(info)
        region_rate = await stream_rate(redis, r, now, info["entries_added"])
        if region_rate is not None:
            rate = (rate or 0.0) + region_rate
    drivers["locations"] = locations[:locations_limit]
    drivers["locations_total"] = locations_total
    return {
        "drivers": drivers,
        "open_offers": open_offers,
        "consumer_groups": groups,
        "dead_letters": dead_letters,
        "streams": streams,
        "events_per_s": None if rate is None else round(rate, 2),
        "regions": [r.as_dict() for r in settings.regions],
        "offer_timeout_s": settings.offer_timeout_s,
        "trip_expiry_s": settings.trip_expiry_s,
        "dispatch_radius_m": settings.dispatch_radius_m,
    }
