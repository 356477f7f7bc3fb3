"""The cold store: finished trips in trip_service's own PostgreSQL.

asyncpg (not psycopg 3): asyncio-native with its own pool, the binary
protocol, and prepared statements cached per connection; the service needs
nothing a synchronous driver would add.

The schema is versioned SQL in `migrations/` (`NNNN_name.sql`), applied at
start in one transaction under an advisory lock (replicas starting together
apply it once), recorded in `schema_version`. A database whose schema is newer
than this code knows is refused: an old release must not write to it.
"""

from __future__ import annotations


import logging
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from common import ids
from common.trip.document import requested_at

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The cold store cannot answer: 503, the trip is still safe where it was.
# (Not every ConnectionError: a client that went away is the edge's to log.)
# A connection PostgreSQL dropped mid-query can also leave the client's
# protocol in a state it reports as an InternalClientError.
COLD_UNAVAILABLE = (asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                    asyncpg.CannotConnectNowError, asyncpg.OperatorInterventionError,
                    asyncpg.InternalClientError, ConnectionRefusedError)
# pg_advisory_xact_lock key of the migrations (any constant of ours).
MIGRATION_LOCK = 0x7269646568  # "rideh"
PERCENTILES = (0.5, 0.9, 0.99)


class SchemaTooNew(RuntimeError):
    pass


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration, in order."""
    out = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        match = re.match(r"(\d+)_(.+)\.sql$", path.name)
        if match:
            out.append((int(match.group(1)), match.group(2), path.read_text()))
    return out


LATEST_VERSION = max(v for v, _, _ in migrations())


async def migrate(conn: asyncpg.Connection) -> int:
    """Bring the schema to LATEST_VERSION; the version it is at."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await conn.fetchval("SELECT coalesce(max(version), 0) FROM schema_version")
        if current > LATEST_VERSION:
            raise SchemaTooNew(
                f"the cold store's schema is at version {current}, newer than this "
                f"trip_service knows ({LATEST_VERSION}): run a newer release"
            )
        for version, name, sql in migrations():
            if version > current:
                logger.info("applying cold store migration %04d %s", version, name)
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_version (version, name) VALUES ($1, $2)", version, name
                )
        return max(current, LATEST_VERSION)


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _ended_at(doc: dict) -> str:
    for field in ("completed_at", "cancelled_at", "expired_at"):
        if doc.get(field):
            return doc[field]
    raise ValueError(f"trip {doc.get('id')} has not ended")


@dataclass(slots=True)
class HotCopy:
    """What the archiver read of one finished trip in Redis."""

    raw: str  # the document exactly as stored (its SHA-1 proves it unchanged)
    doc: dict
    events: list[dict]  # [{stream_id, event}] in order
    deliveries: list[list[dict]]  # per event: the delivery records (ms times)


_TRIP_UPSERT = """
INSERT INTO trips (id, region, rider_id, driver_id, product, status, cancelled_by,
                   requested_ms, requested_at, assigned_at, assigned_ms, ended_at,
                   fare_amount, currency, stars, doc)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::jsonb)
ON CONFLICT (id) DO UPDATE SET
    driver_id = EXCLUDED.driver_id, status = EXCLUDED.status,
    cancelled_by = EXCLUDED.cancelled_by, assigned_at = EXCLUDED.assigned_at,
    assigned_ms = EXCLUDED.assigned_ms,
    ended_at = EXCLUDED.ended_at, fare_amount = EXCLUDED.fare_amount,
    currency = EXCLUDED.currency, stars = EXCLUDED.stars, doc = EXCLUDED.doc,
    archived_at = now()
"""

_EVENT_UPSERT = """
INSERT INTO trip_events (event_id, trip_id, seq, stream_id, type, occurred_at,
                         envelope, deliveries)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)
ON CONFLICT (event_id) DO UPDATE SET
    seq = EXCLUDED.seq, deliveries = EXCLUDED.deliveries
"""


def _trip_row(copy: HotCopy) -> tuple:
    doc = copy.doc
    fare = doc.get("fare") or {}
    rating = doc.get("rating") or {}
    assigned = _ts(doc.get("assigned_at"))
    return (
        doc["id"], ids.region_of(doc["id"]), doc["rider_id"], doc.get("driver_id"), doc["product"],
        doc["status"], doc.get("cancelled_by"), int(doc["requested_ms"]),
        _ts(requested_at(doc)), assigned,
        round(assigned.timestamp() * 1000) if assigned else None, _ts(_ended_at(doc)),
        Decimal(fare["amount"]) if fare.get("amount") else None, fare.get("currency"),
        rating.get("stars"), copy.raw,
    )


def _event_rows(copy: HotCopy) -> list[tuple]:
    rows = []
    for seq, (item, deliveries) in enumerate(zip(copy.events, copy.deliveries)):
        env = item["event"]
        rows.append((
            env["id"], copy.doc["id"], seq, item["stream_id"], env["type"],
            _ts(env["occurred_at"]), orjson.dumps(env).decode(),
            orjson.dumps(deliveries).decode(),
        ))
    return rows


class ColdStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def ping(self) -> None:
        async with self.pool.acquire(timeout=1) as conn:
            await conn.fetchval("SELECT 1")

    # --- the archiver's write ------------------------------------------------
    async def copy(self, copies: list[HotCopy]) -> None:
        """Every trip of the batch with its events, in one transaction."""
        if not copies:
            return
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                await conn.executemany(_TRIP_UPSERT, [_trip_row(c) for c in copies])
                events = [row for c in copies for row in _event_rows(c)]
                if events:
                    await conn.executemany(_EVENT_UPSERT, events)

    # --- reads ---------------------------------------------------------------
    async def trip(self, trip_id: str) -> dict | None:
        raw = await self.pool.fetchval("SELECT doc::text FROM trips WHERE id = $1", trip_id)
        return orjson.loads(raw) if raw is not None else None

    async def events(self, trip_id: str) -> list[tuple[str, dict, list[dict]]]:
        """(stream id, envelope, deliveries) of each event, in order."""
        rows = await self.pool.fetch(
            "SELECT stream_id, envelope::text AS env, deliveries::text AS dels"
            " FROM trip_events WHERE trip_id = $1 ORDER BY seq",
            trip_id,
        )
        return [(r["stream_id"], orjson.loads(r["env"]), orjson.loads(r["dels"])) for r in rows]

    async def page(
        self, role: str, owner_id: str, before: tuple[int, str] | None, limit: int
    ) -> list[tuple[int, str, dict]]:
        """Up to `limit` trips of a rider (by request time) or a driver (by
        the time they took it), newest first, strictly before `(ms, id)`:
        (ms, id, doc). The same order as the hot indexes."""
        column, order = {"rider": ("rider_id", "requested_ms"),
                         "driver": ("driver_id", "assigned_ms")}[role]
        select = f"SELECT {order} AS ms, id, doc::text AS doc FROM trips WHERE {column} = $1"
        if before is None:
            rows = await self.pool.fetch(
                f"{select} ORDER BY {order} DESC, id DESC LIMIT $2", owner_id, limit
            )
        else:
            rows = await self.pool.fetch(
                f"{select} AND ({order}, id) < ($2, $3) ORDER BY {order} DESC, id DESC LIMIT $4",
                owner_id, before[0], before[1], limit,
            )
        return [(r["ms"], r["id"], orjson.loads(r["doc"])) for r in rows]

    async def counts(self) -> dict[str, int]:
        row = await self.pool.fetchrow(
            "SELECT (SELECT count(*) FROM trips) AS trips,"
            " (SELECT count(*) FROM trip_events) AS events"
        )
        return {"reachable": True, "trips": row["trips"], "events": row["events"]}

    # --- analytics -------------------------------------------------------
    async def analytics(self, days: int) -> dict[str, Any]:
        """Aggregates over the archived trips requested in the last `days` days."""
        since = "now() - make_interval(days => $1)"
        async with self.pool.acquire() as conn:
            per_day = await conn.fetch(
                "SELECT to_char(date_trunc('day', requested_at AT TIME ZONE 'UTC'),"
                " 'YYYY-MM-DD') AS day, status, count(*) AS trips,"
                " coalesce(sum(fare_amount), 0) AS revenue"
                f" FROM trips WHERE requested_at >= {since}"
                " GROUP BY 1, 2 ORDER BY 1, 2",
                days,
            )
            per_product = await conn.fetch(
                "SELECT product, count(*) AS trips,"
                " count(*) FILTER (WHERE status = 'completed') AS completed,"
                " count(*) FILTER (WHERE status = 'cancelled') AS cancelled,"
                " count(*) FILTER (WHERE status = 'expired') AS expired,"
                " coalesce(sum(fare_amount), 0) AS revenue,"
                " min(currency) AS currency,"
                " avg(stars)::float8 AS rating,"
                " percentile_cont($2::float8[]) WITHIN GROUP ("
                "   ORDER BY extract(epoch FROM assigned_at - requested_at))"
                "   FILTER (WHERE assigned_at IS NOT NULL) AS assign_s"
                f" FROM trips WHERE requested_at >= {since}"
                " GROUP BY product ORDER BY product",
                days, list(PERCENTILES),
            )
            cancelled = await conn.fetch(
                "SELECT product, cancelled_by, count(*) AS trips"
                f" FROM trips WHERE status = 'cancelled' AND requested_at >= {since}"
                " GROUP BY 1, 2 ORDER BY 1, 2",
                days,
            )
        days_out: dict[str, dict] = {}
        for r in per_day:
            day = days_out.setdefault(r["day"], {"day": r["day"], "by_outcome": {},
                                                 "revenue": Decimal(0)})
            day["by_outcome"][r["status"]] = r["trips"]
            day["revenue"] += r["revenue"]
        products = []
        for r in per_product:
            assign = r["assign_s"] or [None] * len(PERCENTILES)
            products.append({
                "product": r["product"],
                "trips": r["trips"],
                "by_outcome": {"completed": r["completed"], "cancelled": r["cancelled"],
                               "expired": r["expired"]},
                "revenue": {"amount": f"{r['revenue']:.2f}", "currency": r["currency"] or "USD"},
                "average_rating": round(r["rating"], 2) if r["rating"] is not None else None,
                "request_to_assigned_s": {
                    f"p{int(p * 100)}": (round(v, 1) if v is not None else None)
                    for p, v in zip(PERCENTILES, assign)
                },
                "cancelled_by": {c["cancelled_by"] or "unknown": c["trips"]
                                 for c in cancelled if c["product"] == r["product"]},
            })
        return {
            "days": days,
            "per_day": [
                {**d, "revenue": {"amount": f"{d['revenue']:.2f}", "currency": "USD"}}
                for d in days_out.values()
            ],
            "per_product": products,
        }


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb as text in and out: orjson does the work, no per-value hooks.
    await conn.set_type_codec("jsonb", encoder=lambda v: v, decoder=lambda v: v,
                              schema="pg_catalog", format="text")


async def open_pool(url: str, *, min_size: int = 1, max_size: int = 8) -> asyncpg.Pool:
    """A pool with the schema migrated (the first connection applies it)."""
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size,
                                     init=_init_connection, command_timeout=10)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
    except BaseException:
        await pool.close()
        raise
    return pool



