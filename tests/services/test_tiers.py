"""Hot to cold: the archiver moves finished trips to PostgreSQL, the reads
answer the same for a cold trip, and no crash loses or doubles a trip.

Real Redis, real PostgreSQL (the embedded one), the real apps."""

from __future__ import annotations

import asyncpg
import pytest
from redis.exceptions import OutOfMemoryError

from common import keys
from common.timeutil import parse_iso
from trip_service.app import ARCHIVER, COLD
from trip_service.archiver import Archiver
from trip_service.coldstore import ColdStore, HotCopy, _event_rows, _trip_row

from tests.helpers.services import near
from tests.waiting import eventually

# Nothing goes cold by itself: each test makes trips due by hand and runs a pass.
MANUAL = {"hot_retention_s": 3600.0, "archive_interval_s": 3600.0}


async def finished_trip(rig) -> tuple[str, str, str]:
    trip_id, rider_id, driver_id = await rig.assigned_trip()
    for action in ("arrive", "start", "complete"):
        r = await rig.act(driver_id, trip_id, action)
        assert r.status == 200, await r.text()
    return trip_id, rider_id, driver_id


async def cancelled_trip(rig, rider_id: str | None = None) -> str:
    trip = await rig.request(near(), rider_id=rider_id)
    r = await rig.cancel(trip["id"], trip["rider_id"])
    assert r.status == 200, await r.text()
    return trip["id"]


async def make_due(rig, *trip_ids: str) -> None:
    """Due now (as if HOT_RETENTION_S had passed), once the archive group
    has scheduled them."""
    due = keys.archive_due("sf")

    async def scheduled():
        scores = await rig.redis.zmscore(due, list(trip_ids))
        return all(s is not None for s in scores)

    await eventually(scheduled, timeout=5,
                     message="timed out waiting for the archive group to schedule the trips")
    await rig.settled()  # a trip waits for every group to acknowledge its events
    await rig.redis.zadd(due, {t: 0 for t in trip_ids}, xx=True)


def archiver_of(rig) -> Archiver:
    return rig.trips.server.app[ARCHIVER]


async def read(rig, path: str, **params):
    r = await rig.trips.get(path, params=params)
    return r.status, await r.json()


async def hot_keys(rig, trip_id: str) -> int:
    return await rig.redis.exists(keys.trip(trip_id), keys.trip_events(trip_id))


async def test_a_finished_trip_goes_cold_and_reads_the_same(make_rig, database_url):
    rig = await make_rig(database_url=database_url, **MANUAL)
    trip_id, rider_id, driver_id = await finished_trip(rig)
    await rig.settled()
    before_trip = await rig.trip(trip_id)
    _, before_timeline = await read(rig, f"/internal/trips/{trip_id}/timeline")
    stream_ids = [e["stream_id"] for e in before_timeline["events"]]
    assert all([await rig.redis.exists(keys.deliveries("sf", s)) for s in stream_ids])

    await make_due(rig, trip_id)
    assert await archiver_of(rig).pass_once() == 1

    # Nothing of it is left in Redis: document, events, indexes, deliveries.
    assert await hot_keys(rig, trip_id) == 0
    assert await rig.redis.zscore(keys.rider_trips(rider_id), trip_id) is None
    assert await rig.redis.zscore(keys.driver_trips(driver_id), trip_id) is None
    assert await rig.redis.zscore(keys.archive_due("sf"), trip_id) is None
    assert not any([await rig.redis.exists(keys.deliveries("sf", s)) for s in stream_ids])

    # ... and every read answers as before.
    assert await rig.trip(trip_id) == before_trip
    status, timeline = await read(rig, f"/internal/trips/{trip_id}/timeline")
    assert status == 200 and timeline == before_timeline
    status, page = await read(rig, f"/internal/riders/{rider_id}/trips")
    assert status == 200 and [t["id"] for t in page["items"]] == [trip_id]
    assert page["items"][0] == before_trip
    status, page = await read(rig, f"/internal/drivers/{driver_id}/trips")
    assert status == 200 and [t["id"] for t in page["items"]] == [trip_id]

    # The rating window has closed.
    r = await rig.trips.post(f"/internal/trips/{trip_id}/rating",
                             json={"rider_id": rider_id, "stars": 5})
    assert r.status == 409
    body = await r.json()
    assert body["type"] == "/problems/rating-window-closed", body
    # Someone else's cold trip stays a 404.
    r = await rig.trips.post(f"/internal/trips/{trip_id}/rating",
                             json={"rider_id": rig_other_rider(), "stars": 5})
    assert r.status == 404


def rig_other_rider() -> str:
    from common import ids

    return ids.new_id(ids.RIDER, "sf")


async def test_rating_is_refused_once_the_hot_retention_has_passed(make_rig, database_url):
    rig = await make_rig(database_url=database_url, hot_retention_s=0.5,
                         archive_interval_s=3600.0)
    trip_id, rider_id, _ = await finished_trip(rig)
    completed = parse_iso((await rig.doc(trip_id))["completed_at"])

    async def window_over():
        seconds, micros = await rig.redis.time()
        return seconds * 1000 + micros // 1000 - completed > 600

    await eventually(window_over, timeout=5,
                     message="timed out waiting for the hot retention to pass")
    # Still hot (no pass ran), but its day is over: 409, and the trip unchanged.
    r = await rig.trips.post(f"/internal/trips/{trip_id}/rating",
                             json={"rider_id": rider_id, "stars": 4})
    assert r.status == 409, await r.text()
    assert (await r.json())["type"] == "/problems/rating-window-closed"
    assert "rating" not in await rig.doc(trip_id)


async def test_history_pages_across_hot_and_cold_with_one_cursor(make_rig, database_url):
    rig = await make_rig(database_url=database_url, **MANUAL)
    first = await rig.request(near())
    rider_id = first["rider_id"]
    r = await rig.cancel(first["id"], rider_id)
    assert r.status == 200
    trip_ids = [first["id"]] + [await cancelled_trip(rig, rider_id) for _ in range(6)]
    # Every other trip goes cold: the page order interleaves the tiers.
    cold = trip_ids[::2]
    await make_due(rig, *cold)
    assert await archiver_of(rig).pass_once() == len(cold)
    for trip_id in cold:
        assert await hot_keys(rig, trip_id) == 0

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        status, page = await read(rig, f"/internal/riders/{rider_id}/trips", **params)
        assert status == 200, page
        seen += [t["id"] for t in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            break
        assert pages < 10
    assert seen == list(reversed(trip_ids))  # newest first, each once


async def test_a_trip_changed_while_copied_stays_hot_and_is_copied_again(
    make_rig, database_url
):
    rig = await make_rig(database_url=database_url, **MANUAL)
    trip_id, rider_id, _ = await finished_trip(rig)
    await rig.settled()
    archiver = archiver_of(rig)

    async def rate_meanwhile(copies: list[HotCopy]) -> None:
        r = await rig.trips.post(f"/internal/trips/{trip_id}/rating",
                                 json={"rider_id": rider_id, "stars": 3})
        assert r.status == 200, await r.text()

    archiver.before_drop = rate_meanwhile
    await make_due(rig, trip_id)
    assert await archiver.pass_once() == 0
    assert await hot_keys(rig, trip_id) == 2  # kept: it changed after the copy
    archiver.before_drop = None
    await rig.settled()
    await rig.redis.zadd(keys.archive_due("sf"), {trip_id: 0}, xx=True)  # the lease ends
    assert await archiver.pass_once() == 1
    assert await hot_keys(rig, trip_id) == 0
    trip = await rig.trip(trip_id)
    assert trip["rating"]["stars"] == 3
    status, timeline = await read(rig, f"/internal/trips/{trip_id}/timeline")
    assert [e["type"] for e in timeline["events"]][-1] == "trip.rated"


async def test_a_trip_with_unacknowledged_events_is_held_back(make_rig, database_url):
    rig = await make_rig(database_url=database_url, **MANUAL)
    trip_id = await cancelled_trip(rig)
    await make_due(rig, trip_id)
    # A group that has not read the trip's events yet: its delivery records
    # and idempotency marks are still needed, so the trip stays hot.
    await rig.redis.xgroup_create(keys.events("sf"), "late-reader", id="0")
    assert await archiver_of(rig).pass_once() == 0
    assert await hot_keys(rig, trip_id) == 2
    await rig.redis.xgroup_destroy(keys.events("sf"), "late-reader")
    await rig.redis.zadd(keys.archive_due("sf"), {trip_id: 0}, xx=True)
    assert await archiver_of(rig).pass_once() == 1


async def test_postgres_killed_mid_commit_loses_nothing_and_converges(
    make_rig, database_url, postgres_server
):
    """kill -9 of PostgreSQL after the batch's rows are written, before the
    commit: the commit fails, every trip is still hot, none is cold; with the
    server back, the next pass moves them all, once."""
    rig = await make_rig(database_url=database_url, **MANUAL)
    trip_ids = [await cancelled_trip(rig) for _ in range(5)]
    await make_due(rig, *trip_ids)
    archiver = archiver_of(rig)
    real: ColdStore = rig.trips.server.app[COLD]

    class KilledMidCommit(ColdStore):
        async def copy(self, copies: list[HotCopy]) -> None:
            async with self.pool.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                await conn.executemany(_TRIP_SQL, [_trip_row(c) for c in copies])
                await conn.executemany(_EVENT_SQL, [r for c in copies for r in _event_rows(c)])
                postgres_server.kill()
                await tx.commit()

    from trip_service.coldstore import _EVENT_UPSERT as _EVENT_SQL
    from trip_service.coldstore import _TRIP_UPSERT as _TRIP_SQL

    archiver.cold = KilledMidCommit(real.pool)
    with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError, OSError)):
        await archiver.pass_once()
    for trip_id in trip_ids:
        assert await hot_keys(rig, trip_id) == 2, "a trip left Redis without its copy"
    postgres_server.start()
    archiver.cold = real

    async def converged():
        await rig.redis.zadd(keys.archive_due("sf"), {t: 0 for t in trip_ids}, xx=True)
        try:
            await archiver.pass_once()
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
            return False  # the pool's old connections died with the server
        return not any([await hot_keys(rig, t) for t in trip_ids])

    await eventually(converged, timeout=15, interval=0.2,
                     message="timed out waiting for the archive to converge")
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT id FROM trips WHERE id = ANY($1)", trip_ids)
        events = await conn.fetchval(
            "SELECT count(*) FROM trip_events WHERE trip_id = ANY($1)", trip_ids
        )
    finally:
        await conn.close()
    assert sorted(r["id"] for r in rows) == sorted(trip_ids)
    assert events == 2 * len(trip_ids)  # requested + cancelled, each once


async def test_the_archiver_frees_a_full_redis(make_rig, database_url):
    """A full Redis refuses the archiver's lease (a write that may grow
    memory) but not its drops: the due trips move out without a lease, and
    memory is freed while every other write is refused."""
    rig = await make_rig(database_url=database_url, **MANUAL)
    trip_ids = [await cancelled_trip(rig) for _ in range(3)]
    await make_due(rig, *trip_ids)
    try:
        await rig.redis.config_set("maxmemory", "1")
        with pytest.raises(OutOfMemoryError):
            await rig.redis.zadd(keys.archive_due("sf"), {trip_ids[0]: 1}, xx=True)
        assert await archiver_of(rig).pass_once() == 3
    finally:
        await rig.redis.config_set("maxmemory", "0")
    for trip_id in trip_ids:
        assert await hot_keys(rig, trip_id) == 0
        assert (await rig.trip(trip_id))["status"] == "cancelled"  # from the cold store


async def test_cold_reads_are_503_while_postgres_is_down(make_rig, database_url, postgres_server):
    rig = await make_rig(database_url=database_url, **MANUAL)
    trip_id = await cancelled_trip(rig)
    await make_due(rig, trip_id)
    assert await archiver_of(rig).pass_once() == 1
    postgres_server.kill()
    try:
        r = await rig.trips.get(f"/internal/trips/{trip_id}")
        assert r.status == 503, await r.text()
        assert r.headers.get("Retry-After")
        # Hot trips are served as ever, and the service stays ready.
        hot = await rig.request(near())
        assert (await rig.trip(hot["id"]))["status"] == "requested"
        assert (await rig.trips.get("/readyz")).status == 200
        r = await rig.trips.get("/internal/ops/overview")
        assert r.status == 200
        assert (await r.json())["storage"]["cold_store"] == {"reachable": False}
    finally:
        postgres_server.start()

    async def back():
        r = await rig.trips.get(f"/internal/trips/{trip_id}")
        return r.status == 200

    await eventually(back, timeout=15, interval=0.2,
                     message="timed out waiting for cold reads to come back")


async def test_a_newer_schema_is_refused(database_url):
    from trip_service.coldstore import LATEST_VERSION, SchemaTooNew, open_pool

    pool = await open_pool(database_url)  # migrated to this code's version
    await pool.close()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO schema_version (version, name) VALUES ($1, 'future')",
                           LATEST_VERSION + 1)
        with pytest.raises(SchemaTooNew):
            await open_pool(database_url)
    finally:
        await conn.execute("DELETE FROM schema_version WHERE version > $1", LATEST_VERSION)
        await conn.close()
