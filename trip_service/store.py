"""Trip storage: the scripts that change trips and the reads of trips."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import orjson

from common import errors, ids, keys
from common.events import trip_event_items
from common.fares import PRODUCTS
from common.geo import surge_cell
from common.pagination import SAME_SCORE_SLACK, decode_cursor, encode_cursor
from common.regions import Region, region_errors
from common.scripts import Scripts
from common.settings import Settings
from common.streams import read_deliveries
from common.timeutil import iso, now_ms, parse_iso
from common.trip import document
from common.trip.statemachine import transition

from . import scripts as S
from .archiver import archive_status
from .coldstore import COLD_UNAVAILABLE, ColdStore
from .surge import surge_multiplier

PRODUCER = "trip_service"
RATING_WINDOW_CLOSED = (
    "The rating window has closed: a trip can be rated until HOT_RETENTION_S after it ended."
)
# Trip documents read per JSON.MGET.
MGET_BATCH = 500
ACTIVE_TRIP_FIELDS = (
    "id", "region", "status", "product", "pickup", "dropoff", "driver_id", "requested_at",
)


class TripStore:
    def __init__(self, redis, settings: Settings, cold: ColdStore | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.scripts = Scripts(redis, S.LIBRARY, PRODUCER, settings.wait_replicas)
        # Finished trips HOT_RETENTION_S after they ended (None: none go cold).
        self.cold = cold

    # --- helpers ---------------------------------------------------------
    def region_of_trip(self, trip_id: str) -> str:
        """The trip's region, or 404 for an id that cannot be ours."""
        parsed = ids.parse_id(trip_id)
        if parsed is None or parsed[0] != ids.TRIP or self.settings.region(parsed[1]) is None:
            raise errors.NotFound("No such trip.")
        return parsed[1]

    def rider_region(self, rider_id: str) -> Region:
        region = self.settings.region(ids.region_of(rider_id))
        if region is None:
            raise errors.Invalid(
                "The rider's region is not served here.",
                errors=[{"field": "rider_id", "message": "is not a configured region"}],
            )
        return region

    # --- fares -----------------------------------------------------------
    async def surges(self, region: str, cell: str,
                     products: tuple[str, ...] = PRODUCTS) -> dict[str, Decimal]:
        """The surge of each product for a new request with its pickup in `cell`."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for product in products:
                pipe.hget(keys.demand(region, product), cell)
                pipe.hget(keys.supply(region, product), cell)
            counts = await pipe.execute()
        out = {}
        for i, product in enumerate(products):
            demand = int(counts[2 * i] or 0)
            supply = int(counts[2 * i + 1] or 0)
            out[product] = surge_multiplier(demand + 1, supply)
        return out

    async def estimates(self, region_name: str, pickup: dict, dropoff: dict) -> list[dict]:
        region = self.settings.region(region_name)
        if region is None:
            raise errors.Invalid(errors=[{"field": "region", "message": "is not a configured region"}])
        errs = region_errors(region, pickup, "pickup")
        if errs:
            raise errors.Invalid("The pickup is outside the service area.", errors=errs)
        surges = await self.surges(region.name, surge_cell(pickup["lat"], pickup["lon"]))
        return [document.quote(p, pickup, dropoff, surges[p]) for p in PRODUCTS]

    # --- transitions -----------------------------------------------------
    async def request(
        self, rider_id: str, product: str, pickup: dict, dropoff: dict, trip_id: str | None
    ) -> dict:
        region = self.rider_region(rider_id)
        errs = region_errors(region, pickup, "pickup")
        if errs:
            raise errors.Invalid("The pickup is outside the rider's region.", errors=errs)
        if trip_id is None:
            trip_id = ids.new_id(ids.TRIP, region.name)
        elif ids.region_of(trip_id) != region.name:
            raise errors.Invalid(
                errors=[{"field": "trip_id", "message": "must be in the rider's region"}]
            )
        cell = surge_cell(pickup["lat"], pickup["lon"])
        surge = (await self.surges(region.name, cell, (product,)))[product]
        doc = document.new_trip(trip_id, rider_id, product, pickup, dropoff, surge)
        reply = await self.scripts.call(
            S.REQUEST_TRIP, S.RequestKeys.of(trip_id, rider_id, product),
            S.RequestArgs(doc=orjson.dumps(doc).decode(),
                          expiry_ms=int(self.settings.trip_expiry_s * 1000)),
        )
        if reply.kind == "exists" and not document.same_request(
            reply.doc, rider_id, product, pickup, dropoff
        ):
            raise errors.Conflict("This trip id belongs to another request.")
        return reply.doc

    async def cancel(self, trip_id: str, rider_id: str, reason: str | None) -> dict:
        self.region_of_trip(trip_id)
        product = await self._product(trip_id)
        t = transition("rider_cancel")
        reply = await self.scripts.call(
            S.CANCEL_TRIP_BY_RIDER, S.RiderCancelKeys.of(trip_id, rider_id, product),
            S.RiderCancelArgs(rider_id=rider_id, sources=t.sources_csv, target=t.target,
                              reason=reason or ""),
        )
        return reply.doc

    async def rate(self, trip_id: str, rider_id: str, stars: int, comment: str | None) -> dict:
        self.region_of_trip(trip_id)
        t = transition("rate")
        ended = await self.redis.execute_command(
            "JSON.GET", keys.trip(trip_id), "$.completed_at", "$.rider_id"
        )
        if ended is None:
            cold = await self._cold_trip(trip_id)
            if cold is not None and cold.get("rider_id") == rider_id:
                raise errors.RatingWindowClosed(RATING_WINDOW_CLOSED)
            raise errors.NotFound("No such trip.")
        found = orjson.loads(ended)
        completed_at = (found.get("$.completed_at") or [None])[0]
        if (
            self.cold is not None
            and completed_at
            and (found.get("$.rider_id") or [None])[0] == rider_id
            and now_ms() - parse_iso(completed_at) >= self.settings.hot_retention_s * 1000
        ):
            raise errors.RatingWindowClosed(RATING_WINDOW_CLOSED)
        # Should the archiver copy the trip while this runs, its drop sees the
        # change and the next pass copies the rated trip.
        reply = await self.scripts.call(
            S.RATE_TRIP, S.RateKeys.of(trip_id),
            S.RateArgs(rider_id=rider_id, sources=t.sources_csv, stars=stars,
                       comment=comment or ""),
        )
        return reply.doc

    async def _product(self, trip_id: str) -> str:
        product = await self.redis.execute_command("JSON.GET", keys.trip(trip_id), "$.product")
        if not product or product == "[]":
            raise errors.NotFound("No such trip.")
        return orjson.loads(product)[0]

    # --- reads -----------------------------------------------------------
    async def get(self, trip_id: str) -> dict:
        """The rendered trip, with `queue_position` while requested."""
        self.region_of_trip(trip_id)
        raw = await self.redis.execute_command("JSON.GET", keys.trip(trip_id))
        if raw is None:
            cold = await self._cold_trip(trip_id)
            if cold is None:
                raise errors.NotFound("No such trip.")
            return document.render(cold)
        return await self.rendered(orjson.loads(raw))

    async def rendered(self, doc: dict) -> dict:
        """The trip of a document read from Redis, with `queue_position`
        while requested."""
        position = None
        if doc["status"] == "requested":
            pending = keys.pending(ids.region_of(doc["id"]), doc["product"])
            rank = await self.redis.zrank(pending, doc["id"])
            position = rank + 1 if rank is not None else None
        return document.render(doc, position)

    async def docs(self, trip_ids: list[str]) -> list[dict]:
        if not trip_ids:
            return []
        raws = await self.redis.execute_command(
            "JSON.MGET", *[keys.trip(t) for t in trip_ids], "$"
        )
        return [document.expand(orjson.loads(raw)[0]) for raw in raws if raw]

    async def _cold_trip(self, trip_id: str) -> dict | None:
        return await self.cold.trip(trip_id) if self.cold is not None else None

    async def rider_trips(self, rider_id: str, limit: int, cursor: str | None) -> dict:
        self.rider_region(rider_id)
        return await self.history("rider", rider_id, keys.rider_trips(rider_id), limit, cursor)

    async def driver_trips(self, driver_id: str, limit: int, cursor: str | None) -> dict:
        if not ids.is_id(driver_id, ids.DRIVER) or self.settings.region(
            ids.region_of(driver_id)
        ) is None:
            raise errors.NotFound("no such driver")
        return await self.history(
            "driver", driver_id, keys.driver_trips(driver_id), limit, cursor
        )

    async def history(
        self, role: str, owner_id: str, index: str, limit: int, cursor: str | None
    ) -> dict:
        """Newest first across the hot index and the cold store, one cursor
        `(ms, id)` for both (the index's score: requested for a rider, taken
        for a driver). Hot is read first: a trip that leaves it between the
        two reads was committed cold before it left, so it is never missed;
        one found in both (copied, not yet dropped) counts once."""
        before = decode_cursor(cursor) if cursor else None
        if before is not None:
            rows = await self.redis.zrevrangebyscore(
                index, before[0], "-inf", start=0, num=limit + 1 + SAME_SCORE_SLACK,
                withscores=True,
            )
            rows = [(m, s) for m, s in rows if not (int(s) == before[0] and m >= before[1])]
        else:
            rows = await self.redis.zrevrange(index, 0, limit, withscores=True)
        rows = rows[: limit + 1]
        hot = {doc["id"]: doc for doc in await self.docs([m for m, _ in rows])}
        merged: dict[str, tuple[int, str, dict]] = {
            m: (int(s), m, hot[m]) for m, s in rows if m in hot
        }
        if self.cold is not None:
            for ms, trip_id, doc in await self.cold.page(role, owner_id, before, limit + 1):
                merged.setdefault(trip_id, (ms, trip_id, doc))
        ordered = sorted(merged.values(), key=lambda t: (t[0], t[1]), reverse=True)
        page = ordered[:limit]
        next_cursor = (
            encode_cursor(page[-1][0], page[-1][1]) if len(ordered) > limit or (
                len(rows) > limit and page
            ) else None
        )
        return {"items": [document.render(d) for _, _, d in page], "next_cursor": next_cursor}

    async def event_items(self, trip_id: str) -> list[dict]:
        """The trip's events as stored, `[{stream_id, event}]`, hot or cold
        (what an SSE client is sent first)."""
        self.region_of_trip(trip_id)
        doc, raw = await self._hot_events(trip_id)
        if raw:
            return trip_event_items(raw, trip_id, doc)
        cold = await self.cold.events(trip_id) if self.cold is not None else []
        return [{"stream_id": sid, "event": env} for sid, env, _ in cold]

    async def _hot_events(self, trip_id: str) -> tuple[dict | None, list]:
        """The document and the event list, read together (one slot): the
        list's `trip.requested` reads its data from the document (which holds
        the request unchanged: no transaction needed)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.execute_command("JSON.GET", keys.trip(trip_id))
            pipe.lrange(keys.trip_events(trip_id), 0, -1)
            raw_doc, raw = await pipe.execute()
        return (orjson.loads(raw_doc) if raw_doc else None), raw

    async def timeline(self, trip_id: str) -> dict:
        r = self.region_of_trip(trip_id)
        doc, raw = await self._hot_events(trip_id)
        if doc is not None:
            items = trip_event_items(raw, trip_id, doc)
            deliveries = await asyncio.gather(
                *(read_deliveries(self.redis, r, item["stream_id"]) for item in items)
            )
        else:
            cold = await self.cold.events(trip_id) if self.cold is not None else []
            if not cold and await self._cold_trip(trip_id) is None:
                raise errors.NotFound("No such trip.")
            items = [{"stream_id": sid, "event": env} for sid, env, _ in cold]
            deliveries = [dels for _, _, dels in cold]
        events = []
        for item, dels in zip(items, deliveries):
            env = item["event"]
            events.append({
                "id": env["id"],
                "stream_id": item["stream_id"],
                "type": env["type"],
                "occurred_at": env["occurred_at"],
                "producer": env["producer"],
                "trace_id": env["trace_id"],
                "driver_id": env.get("driver_id"),
                "data": env.get("data", {}),
                "deliveries": [
                    {
                        "group": d["group"],
                        "consumer": d["consumer"],
                        "attempts": d["attempts"],
                        "delivered_at": iso(d["delivered_at"]) if d.get("delivered_at") else None,
                        "acked_at": iso(d["acked_at"]) if d.get("acked_at") else None,
                        **({"error": d["error"]} if d.get("error") else {}),
                    }
                    for d in dels
                ],
            })
        return {"trip_id": trip_id, "events": events}

    async def overview(self, limit: int, active_limit: int = 0) -> dict:
        """Trips by status (counters, not a scan), the pending queues in rank
        order, and up to `active_limit` active trips, oldest first (the index of
        active trips, not a scan)."""
        seconds, micros = await self.redis.time()
        now = seconds * 1000 + micros // 1000
        by_status: dict[str, int] = {}
        by_region: dict[str, dict] = {}
        pending: list[dict] = []
        pending_total: dict[str, int] = {}
        for region in self.settings.regions:
            r = region.name
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hgetall(keys.trip_status_counts(r))
                for product in PRODUCTS:
                    pipe.zrange(keys.pending(r, product), 0, limit - 1, withscores=True)
                    pipe.zcard(keys.pending(r, product))
                replies = await pipe.execute()
            counts = {k: int(v) for k, v in replies[0].items() if int(v) > 0}
            by_region[r] = counts
            for status, n in counts.items():
                by_status[status] = by_status.get(status, 0) + n
            for i, product in enumerate(PRODUCTS):
                rows, total = replies[1 + 2 * i], replies[2 + 2 * i]
                pending_total[product] = pending_total.get(product, 0) + total
                offers = await self._offers([m for m, _ in rows])
                for position, ((trip_id, score), offer) in enumerate(zip(rows, offers), 1):
                    item = {
                        "trip_id": trip_id,
                        "region": r,
                        "product": product,
                        "queue_position": position,
                        "requested_at": iso(int(score)),
                        "waiting_s": round(max(now - score, 0) / 1000, 1),
                    }
                    if offer:
                        item["offered_to"] = offer["driver_id"]
                        item["offer_expires_at"] = offer["expires_at"]
                    pending.append(item)
        pending.sort(key=lambda p: (p["requested_at"], p["trip_id"]))
        active, active_total = await self._active_trips(active_limit)
        return {
            "trips_by_status": by_status,
            "trips_by_region": by_region,
            "pending_total": pending_total,
            "pending": pending[:limit],
            "active_trips": active,
            "active_trips_total": active_total,
            "regions": [r.as_dict() for r in self.settings.regions],
            "trip_expiry_s": self.settings.trip_expiry_s,
        }

    async def _active_trips(self, limit: int) -> tuple[list[dict], int]:
        """The oldest `limit` active trips of every region (oldest first) and
        how many there are."""
        rows: list[tuple[float, str]] = []
        total = 0
        for region in self.settings.regions:
            key = keys.active_trips(region.name)
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zcard(key)
                if limit > 0:
                    pipe.zrange(key, 0, limit - 1, withscores=True)
                replies = await pipe.execute()
            total += replies[0]
            if limit > 0:
                rows += [(score, trip_id) for trip_id, score in replies[1]]
        rows.sort()
        trip_ids = [trip_id for _, trip_id in rows[:limit]]
        # One region per JSON.MGET: its keys share a slot on a cluster.
        by_region: dict[str, list[str]] = {}
        for trip_id in trip_ids:
            by_region.setdefault(ids.region_of(trip_id), []).append(trip_id)
        docs: dict[str, dict] = {}
        for region_ids in by_region.values():
            for start in range(0, len(region_ids), MGET_BATCH):
                for doc in await self.docs(region_ids[start : start + MGET_BATCH]):
                    docs[doc["id"]] = doc
        out = []
        for trip_id in trip_ids:
            doc = docs.get(trip_id)
            if doc is not None:
                full = document.derived(doc)
                item = {k: full[k] for k in ACTIVE_TRIP_FIELDS if full.get(k) is not None}
                item["trip_id"] = item.pop("id")
                if doc["status"] == "requested":
                    item.pop("driver_id", None)
                    if doc.get("offer"):
                        item["offered_to"] = doc["offer"]["driver_id"]
                out.append(item)
        return out, total

    # --- tiers -----------------------------------------------------------
    async def memory(self) -> tuple[int, int, str | None]:
        """(used bytes, maxmemory or 0, policy) of Redis; on a cluster the
        fullest node's (a write is refused by the node that holds its key)."""
        info = await self.redis.info("memory")
        nodes = list(info.values()) if "used_memory" not in info else [info]
        nodes = [n for n in nodes if isinstance(n, dict) and "used_memory" in n]

        def fullness(n: dict) -> float:
            limit = int(n.get("maxmemory", 0))
            return int(n["used_memory"]) / limit if limit else 0.0

        node = max(nodes, key=fullness)
        return int(node["used_memory"]), int(node.get("maxmemory", 0)), node.get(
            "maxmemory_policy"
        )

    async def storage(self) -> dict:
        """Redis memory against its limit, the archive's backlog, the cold
        store's size: what ops needs to see a Redis filling up."""
        used, limit, policy = await self.memory()
        out = {
            "redis_memory": {"used_bytes": used, "max_bytes": limit or None, "policy": policy},
            "archive": await archive_status(self.redis, self.settings),
        }
        if self.cold is not None:
            try:
                out["cold_store"] = await self.cold.counts()
            except COLD_UNAVAILABLE:
                out["cold_store"] = {"reachable": False}
        return out

    async def analytics(self, days: int) -> dict:
        if self.cold is None:
            raise errors.Unavailable(
                "There is no cold store (DATABASE_URL is not set): no analytics.",
                headers={"Retry-After": "60"},
            )
        return await self.cold.analytics(days)

    async def _offers(self, trip_ids: list[str]) -> list[dict | None]:
        if not trip_ids:
            return []
        raws = await self.redis.execute_command(
            "JSON.MGET", *[keys.trip(t) for t in trip_ids], "$.offer"
        )
        out = []
        for raw in raws:
            value = orjson.loads(raw) if raw else []
            out.append(value[0] if value and value[0] else None)
        return out
