"""Hold the database to the ledger of acknowledged writes.

`check(redis, ledger)` reads the whole state in one MULTI (a consistent
snapshot even while the dispatcher and sweeper keep working) and reports:

- lost: an acknowledged write that is not there in its acknowledged state or
  a later one (an account, a session, a logout, a trip, a rating, an
  idempotency record, a driver gone online);
- inconsistent: a trip whose document, ranking, indexes, event list and
  stream entries disagree;
- unattempted: something in the database that no client attempted (an
  account, a profile, a driver, a session, a trip, or a second trip for one
  request).

The checker is proved able to fail by the control run without persistence
(test_proof_redis_crash.py), where it must find losses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio.cluster import RedisCluster

from common import keys
from common.events import trip_event_items
from common.trip.document import expand
from driver_service.document import expand as expand_driver

from tests.proofs.load import RANK, Ledger

REGION = "sf"
PRODUCTS = keys.PRODUCTS
# The status each event type leaves the trip in (None: unchanged).
EVENT_STATUS = {
    "trip.requested": "requested",
    "trip.offered": None,
    "trip.offer_declined": None,
    "trip.offer_expired": None,
    "trip.assigned": "assigned",
    "trip.driver_arrived": "arrived",
    "trip.started": "in_progress",
    "trip.completed": "completed",
    "trip.cancelled": "cancelled",
    "trip.driver_cancelled": "requested",
    "trip.expired": "expired",
    "trip.rated": None,
}
# Later states reachable from each state by the moves the load makes (a
# driver of the load never gives a trip back, so `assigned` never returns to
# `requested`).
LATER = {
    "requested": {"requested", "assigned", "arrived", "in_progress", "completed", "cancelled",
                  "expired"},
    "assigned": {"assigned", "arrived", "in_progress", "completed", "cancelled"},
    "arrived": {"arrived", "in_progress", "completed", "cancelled"},
    "in_progress": {"in_progress", "completed"},
    "completed": {"completed"},
    "cancelled": {"cancelled"},
    "expired": {"expired"},
}
ACTIVE = {"requested", "assigned", "arrived", "in_progress"}


@dataclass
class Report:
    checked: int = 0
    lost: list[str] = field(default_factory=list)
    inconsistent: list[str] = field(default_factory=list)
    unattempted: list[str] = field(default_factory=list)
    trips_seen: int = 0

    @property
    def clean(self) -> bool:
        return not (self.lost or self.inconsistent or self.unattempted)

    def summary(self) -> str:
        return (
            f"checked {self.checked} acknowledged writes, {len(self.lost)} lost, "
            f"{len(self.inconsistent)} inconsistent, {len(self.unattempted)} unattempted, "
            f"{self.trips_seen} trips in the database"
        )

    def details(self, n: int = 15) -> str:
        parts = []
        for name in ("lost", "inconsistent", "unattempted"):
            items = getattr(self, name)
            if items:
                parts.append(f"{name}: " + "; ".join(items[:n]))
        return "\n".join(parts)


async def _scan(redis, pattern: str) -> list[str]:
    return [k async for k in redis.scan_iter(match=pattern, count=1000)]


def _loads(raw: Any) -> Any:
    return orjson.loads(raw) if raw else None


async def snapshot(redis) -> dict[str, Any]:
    """Every key the checker looks at, read in one transaction."""
    trip_keys = [k for k in await _scan(redis, f"{keys.tag(REGION)}:trip:*")
                 if not k.endswith(":events")]
    driver_keys = [k for k in await _scan(redis, f"{keys.tag(REGION)}:driver:*")
                   if k.count(":") == 3]
    account_keys = await _scan(redis, f"{keys.GW}:account:*")
    subject_keys = await _scan(redis, f"{keys.GW}:subject:*")
    session_keys = await _scan(redis, f"{keys.GW}:session:*")
    idem_keys = await _scan(redis, f"{keys.GW}:idem:*")
    # A region's keys share one slot: one transaction reads them together. On
    # a cluster the gateway's keys live on every shard and are read after
    # (the clients have stopped: they do not change meanwhile).
    cluster = isinstance(redis, RedisCluster)

    def region_reads(pipe) -> None:
        for k in trip_keys:
            pipe.execute_command("JSON.GET", k)
            pipe.lrange(k + ":events", 0, -1)
        for k in driver_keys:
            pipe.execute_command("JSON.GET", k)
        for product in PRODUCTS:
            pipe.zrange(keys.pending(REGION, product), 0, -1)
            pipe.zrange(keys.pickups(REGION, product), 0, -1)
        pipe.zrange(keys.expiry_deadlines(REGION), 0, -1)
        pipe.xrange(keys.events(REGION))

    def gateway_reads(pipe) -> None:
        for k in account_keys + subject_keys + idem_keys:
            pipe.get(k)
        for k in session_keys:
            pipe.hgetall(k)

    async with redis.pipeline(transaction=True) as pipe:
        region_reads(pipe)
        if not cluster:
            gateway_reads(pipe)
        got = await pipe.execute()
    if cluster:
        async with redis.pipeline(transaction=False) as pipe:
            gateway_reads(pipe)
            got += await pipe.execute()
    # In the order the standalone code reads them.
    n_region = len(trip_keys) * 2 + len(driver_keys)
    n_tail = len(PRODUCTS) * 2 + 2
    region, tail, rest = got[:n_region], got[n_region:n_region + n_tail], got[n_region + n_tail:]
    replies = iter([*region, *rest, *tail])
    snap: dict[str, Any] = {"trips": {}, "trip_events": {}, "drivers": {}, "accounts": {},
                            "subjects": {}, "idem": {}, "sessions": {}}
    for k in trip_keys:
        doc = _loads(next(replies))
        raw_events = next(replies)
        if doc is not None:
            doc = expand(doc)
            events = trip_event_items(raw_events, doc["id"], doc)
            snap["trips"][doc["id"]] = doc
            snap["trip_events"][doc["id"]] = events
    for k in driver_keys:
        doc = _loads(next(replies))
        if doc is not None:
            snap["drivers"][doc["id"]] = expand_driver(doc)
    for k in account_keys:
        snap["accounts"][k] = _loads(next(replies))
    for k in subject_keys:
        snap["subjects"][k] = _loads(next(replies))
    for k in idem_keys:
        snap["idem"][k] = _loads(next(replies))
    for k in session_keys:
        snap["sessions"][k] = next(replies)
    snap["pending"] = {p: set() for p in PRODUCTS}
    snap["pickups"] = {p: set() for p in PRODUCTS}
    for product in PRODUCTS:
        snap["pending"][product] = set(next(replies))
        snap["pickups"][product] = set(next(replies))
    snap["expiry"] = set(next(replies))
    snap["stream"] = next(replies)
    # Active-trip pointers of the riders who have trips.
    riders = {d["rider_id"] for d in snap["trips"].values()}
    async with redis.pipeline(transaction=False) as pipe:
        for r in riders:
            pipe.get(keys.rider_active(r))
        actives = await pipe.execute()
    snap["active"] = dict(zip(riders, actives))
    return snap


async def check(redis, ledger: Ledger) -> Report:
    snap = await snapshot(redis)
    report = Report(trips_seen=len(snap["trips"]))
    _check_accounts(snap, ledger, report)
    _check_sessions(snap, ledger, report)
    _check_trips(snap, ledger, report)
    _check_consistency(snap, report)
    _check_unattempted(snap, ledger, report)
    return report


def _check_accounts(snap, ledger: Ledger, report: Report) -> None:
    for name, subject_id in ledger.accounts.items():
        report.checked += 1
        record = snap["accounts"].get(keys.account(name))
        profile = snap["subjects"].get(keys.subject(subject_id))
        if record is None or record.get("subject_id") != subject_id:
            report.lost.append(f"account {name} ({subject_id}): {record}")
        elif record.get("state") != "active":
            report.lost.append(f"account {name} not active: {record.get('state')}")
        elif profile is None:
            report.lost.append(f"profile of {name} ({subject_id})")
        elif ledger.roles.get(name) == "driver" and subject_id not in snap["drivers"]:
            report.lost.append(f"driver document of {name} ({subject_id})")
    for driver_id in ledger.online_drivers:
        report.checked += 1
        doc = snap["drivers"].get(driver_id)
        if doc is None or doc.get("status") != "online" or doc.get("location") is None:
            report.lost.append(
                f"driver {driver_id} online at a place: "
                f"{doc and (doc.get('status'), doc.get('location'))}"
            )


def _check_sessions(snap, ledger: Ledger, report: Report) -> None:
    for digest, (name, subject_id) in ledger.sessions.items():
        report.checked += 1
        session = snap["sessions"].get(keys.session(digest))
        if not session or session.get("subject_id") != subject_id:
            report.lost.append(f"session of {name}: {session}")
    for digest in ledger.logged_out:
        report.checked += 1
        if keys.session(digest) in snap["sessions"]:
            report.lost.append(f"logout of session {digest[:12]}: the session is back")


def _check_trips(snap, ledger: Ledger, report: Report) -> None:
    trips = snap["trips"]
    for trip_id, ack in ledger.trips.items():
        report.checked += 1
        doc = trips.get(trip_id)
        if doc is None:
            report.lost.append(f"trip {trip_id} (acknowledged {ack.status})")
            continue
        if doc["rider_id"] != ack.rider_id:
            report.lost.append(f"trip {trip_id}: rider {doc['rider_id']} != {ack.rider_id}")
        if doc["status"] not in LATER[ack.status]:
            report.lost.append(f"trip {trip_id}: {doc['status']}, acknowledged {ack.status}")
        elif ack.driver_id and RANK[ack.status] >= 1 and doc.get("status") != "cancelled" \
                and doc.get("driver_id") != ack.driver_id:
            report.lost.append(
                f"trip {trip_id}: driver {doc.get('driver_id')}, acknowledged {ack.driver_id}"
            )
    for trip_id, stars in ledger.ratings.items():
        report.checked += 1
        rating = (trips.get(trip_id) or {}).get("rating") or {}
        if rating.get("stars") != stars:
            report.lost.append(f"rating of {trip_id}: {rating}, acknowledged {stars} stars")
    for (rider_id, key), trip_id in ledger.idempotency.items():
        report.checked += 1
        digest = hashlib.sha256(key.encode()).hexdigest()
        record = snap["idem"].get(keys.idempotency(rider_id, digest))
        if record is None:
            report.lost.append(f"idempotency record {rider_id}/{key} -> {trip_id}")
        elif record.get("state") != "done" or record.get("trip_id") != trip_id:
            report.lost.append(f"idempotency record {key}: {record.get('state')} "
                               f"{record.get('trip_id')} != {trip_id}")
        elif orjson.loads(record["body"]).get("id") != trip_id:
            report.lost.append(f"idempotency record {key}: replays another trip")


def replay(events: list[dict]) -> tuple[str | None, str | None, str | None]:
    """(status, driver holding the trip, driver holding an open offer) from the events."""
    status = driver = offer = None
    for item in events:
        env = item["event"]
        etype = env["type"]
        if etype not in EVENT_STATUS:
            raise ValueError(f"unknown event type {etype}")
        new = EVENT_STATUS[etype]
        d = env.get("driver_id") or (env.get("data") or {}).get("driver_id")
        if etype == "trip.offered":
            offer = d
        elif etype in ("trip.offer_declined", "trip.offer_expired", "trip.assigned",
                       "trip.cancelled", "trip.expired"):
            offer = None
        if etype == "trip.assigned":
            driver = d
        elif etype in ("trip.driver_cancelled", "trip.cancelled"):
            driver = None
        if new is not None:
            status = new
    return status, driver, offer


def _check_consistency(snap, report: Report) -> None:
    stream_by_trip: dict[str, list[tuple[str, dict]]] = {}
    for sid, fields in snap["stream"]:
        if fields.get("trip_id"):
            stream_by_trip.setdefault(fields["trip_id"], []).append((sid, fields))
    for trip_id in stream_by_trip:
        if trip_id not in snap["trips"]:
            report.inconsistent.append(f"stream events of {trip_id}, which does not exist")
    for trip_id, doc in snap["trips"].items():
        problems = []
        status = doc["status"]
        product = doc["product"]
        requested = status == "requested"
        if (trip_id in snap["pending"][product]) != requested:
            problems.append(f"ranking entry {'missing' if requested else 'left'}")
        # The pickup index holds the trips waiting for an offer.
        waiting = requested and not doc.get("offer")
        if (trip_id in snap["pickups"][product]) != waiting:
            problems.append(f"pickup index {'missing' if waiting else 'left'}")
        if (trip_id in snap["expiry"]) != requested:
            problems.append(f"expiry deadline {'missing' if requested else 'left'}")
        for other in PRODUCTS:
            if other != product and trip_id in snap["pending"][other]:
                problems.append(f"ranked under {other}")
        active = snap["active"].get(doc["rider_id"])
        if status in ACTIVE and active != trip_id:
            problems.append(f"rider's active trip is {active}")
        if status not in ACTIVE and active == trip_id:
            problems.append("still the rider's active trip")
        events = snap["trip_events"].get(trip_id, [])
        if not events or events[0]["event"]["type"] != "trip.requested":
            problems.append("event list does not start with trip.requested")
        try:
            ev_status, ev_driver, ev_offer = replay(events)
        except ValueError as exc:
            problems.append(str(exc))
        else:
            if ev_status != status:
                problems.append(f"events say {ev_status}")
            if status in ("assigned", "arrived", "in_progress", "completed") \
                    and ev_driver != doc.get("driver_id"):
                problems.append(f"events say driver {ev_driver}, document {doc.get('driver_id')}")
            doc_offer = (doc.get("offer") or {}).get("driver_id")
            if status == "requested" and ev_offer != doc_offer:
                problems.append(f"events say offer to {ev_offer}, document {doc_offer}")
        rated = any(e["event"]["type"] == "trip.rated" for e in events)
        if rated != bool(doc.get("rating")):
            problems.append(f"rating {doc.get('rating')} but rated event {rated}")
        listed = [(e["stream_id"], e["event"]["id"]) for e in events]
        in_stream = [(sid, orjson.loads(f["env"])["id"]) for sid, f in stream_by_trip.get(trip_id, [])]
        if listed != in_stream:
            first = next(
                (a, b) for a, b in zip([*listed, None], [*in_stream, None]) if a != b
            )
            problems.append(f"event list has {len(listed)} entries, the stream "
                            f"{len(in_stream)} (first difference: {first})")
        if problems:
            report.inconsistent.append(f"trip {trip_id} ({status}): " + ", ".join(problems))


async def existing(redis) -> dict[str, set[str]]:
    """What is in the database already: a ledger started now is not answerable for it."""
    snap = await snapshot(redis)
    return {name: set(snap[name]) for name in
            ("accounts", "subjects", "drivers", "sessions", "trips")}


def _check_unattempted(snap, ledger: Ledger, report: Report) -> None:
    before = ledger.preexisting
    attempted = set(ledger.attempted_users) | {"ops"}
    for key, record in snap["accounts"].items():
        name = key[len(keys.GW) + len(":account:{"):-1]
        if name not in attempted and key not in before.get("accounts", ()):
            report.unattempted.append(f"account {name}")
    for key, profile in snap["subjects"].items():
        if profile and profile.get("user_name") not in attempted \
                and key not in before.get("subjects", ()):
            report.unattempted.append(f"profile {key}")
    driver_names = {n for n, role in ledger.attempted_users.items() if role == "driver"}
    for driver_id, doc in snap["drivers"].items():
        if doc.get("last_name") not in driver_names and driver_id not in before.get("drivers", ()):
            report.unattempted.append(f"driver {driver_id} ({doc.get('last_name')})")
    logins = ledger.login_attempted | {"ops"}
    for key, session in snap["sessions"].items():
        if session and session.get("user_name") not in logins \
                and key not in before.get("sessions", ()):
            report.unattempted.append(f"session of {session.get('user_name')}")
    # Each trip names its attempt (rider and a unique dropoff); one trip per attempt.
    by_attempt = {
        (rider_id, body["dropoff"]["lat"], body["dropoff"]["lon"]): key
        for (rider_id, key), body in ledger.trip_attempts.items()
    }
    used: dict[str, str] = {}
    for trip_id, doc in snap["trips"].items():
        if trip_id in before.get("trips", ()):
            continue
        attempt = by_attempt.get((doc["rider_id"], doc["dropoff"]["lat"], doc["dropoff"]["lon"]))
        if attempt is None:
            report.unattempted.append(f"trip {trip_id} of {doc['rider_id']}")
        elif attempt in used:
            report.unattempted.append(
                f"trip {trip_id}: a second trip for request {attempt} (first {used[attempt]})"
            )
        else:
            used[attempt] = trip_id


def stream_invariants(entries: list[tuple[str, dict]]) -> tuple[dict[str, int], list[str]]:
    """Walk a region stream in order: a trip never has two open offers nor
    two drivers, a driver never holds two offers nor two trips at once.
    Returns (counts of offers and assignments, problems)."""
    trip_offer: dict[str, str] = {}
    driver_offer: dict[str, str] = {}
    trip_driver: dict[str, str] = {}
    driver_trip: dict[str, str] = {}
    counts = {"offers": 0, "assignments": 0}
    problems: list[str] = []
    closes_offer = {"trip.offer_declined", "trip.offer_expired", "trip.assigned",
                    "trip.cancelled", "trip.expired"}
    frees_driver = {"trip.completed", "trip.cancelled", "trip.driver_cancelled"}
    for sid, fields in entries:
        etype, trip_id = fields.get("type"), fields.get("trip_id")
        driver_id = fields.get("driver_id") or None
        if etype == "trip.offered":
            counts["offers"] += 1
            if trip_id in trip_offer:
                problems.append(f"{sid}: {trip_id} offered while offered to {trip_offer[trip_id]}")
            if driver_id in driver_offer:
                problems.append(f"{sid}: {driver_id} offered {trip_id} while holding an offer "
                                f"of {driver_offer[driver_id]}")
            trip_offer[trip_id] = driver_id
            driver_offer[driver_id] = trip_id
        elif etype in closes_offer and trip_id in trip_offer:
            driver_offer.pop(trip_offer.pop(trip_id), None)
        if etype == "trip.assigned":
            counts["assignments"] += 1
            if trip_id in trip_driver:
                problems.append(f"{sid}: {trip_id} assigned twice "
                                f"({trip_driver[trip_id]}, then {driver_id})")
            if driver_id in driver_trip:
                problems.append(f"{sid}: {driver_id} assigned {trip_id} while on "
                                f"{driver_trip[driver_id]}")
            trip_driver[trip_id] = driver_id
            driver_trip[driver_id] = trip_id
        elif etype in frees_driver and trip_id in trip_driver:
            driver_trip.pop(trip_driver.pop(trip_id), None)
    return counts, problems


async def groups_drained(redis) -> list[dict]:
    """The consumer groups of the region stream, when every one has no lag and
    nothing pending; else an empty list."""
    groups = await redis.xinfo_groups(keys.events(REGION))
    if groups and all(g["pending"] == 0 and g.get("lag") == 0 for g in groups):
        return groups
    return []
