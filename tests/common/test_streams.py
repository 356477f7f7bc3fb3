"""The consumer-group runner against a real server."""

from __future__ import annotations

import asyncio

import pytest

from common import keys
from common.events import entry_fields, envelope
from common.streams import StreamConsumer, ensure_group, read_deliveries, trim_stream
from tests.waiting import eventually

REGION = "sf"
STREAM = keys.events(REGION)
GROUP = "testers"

# The idempotent effect of a handler: one atomic step that counts an event
# only the first time its id is seen (what the services' scripts do).
COUNT_ONCE = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', 3600) then
  return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
end
return 0
"""


async def publish(redis, n: int) -> list[str]:
    ids = []
    for i in range(n):
        env = envelope("trip.requested", "test", trip_id=f"trp_sf_{i}", data={"i": i})
        ids.append(await redis.xadd(STREAM, entry_fields(env)))
    return ids


def consumer(redis, name: str, handler, **kw) -> StreamConsumer:
    kw.setdefault("claim_idle_ms", 100)
    kw.setdefault("block_ms", 50)
    return StreamConsumer(redis, STREAM, GROUP, name, handler, **kw)


async def pending_count(redis) -> int:
    return (await redis.xpending(STREAM, GROUP))["pending"]


async def test_each_message_is_handled_once_and_acked(redis):
    ids = await publish(redis, 25)
    seen: list[str] = []

    async def handler(entry):
        seen.append(entry.id)

    c = consumer(redis, "c1", handler, batch=10)
    task = asyncio.create_task(c.run())
    await eventually(lambda: len(seen) == 25)
    c.stop()
    await task
    assert seen == ids
    assert await pending_count(redis) == 0
    records = await read_deliveries(redis, REGION, ids[0])
    assert len(records) == 1
    assert records[0]["group"] == GROUP and records[0]["consumer"] == "c1"
    assert records[0]["attempts"] == 1
    assert records[0]["acked_at"] >= records[0]["delivered_at"]


async def test_entries_of_a_killed_consumer_are_reclaimed_by_another(redis):
    ids = await publish(redis, 5)
    started = asyncio.Event()

    async def hangs(entry):
        started.set()
        await asyncio.Event().wait()  # never returns: the process "dies" here

    victim = consumer(redis, "victim", hangs, batch=5)
    task = asyncio.create_task(victim.run())
    await started.wait()
    task.cancel()  # killed before its ack
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await pending_count(redis) == 5

    handled: list[tuple[str, int]] = []

    async def ok(entry):
        handled.append((entry.id, entry.attempts))

    rescuer = consumer(redis, "rescuer", ok)
    task = asyncio.create_task(rescuer.run())
    await eventually(lambda: len(handled) == 5)
    rescuer.stop()
    await task
    assert [h[0] for h in handled] == ids
    assert all(attempts == 2 for _, attempts in handled)
    assert await pending_count(redis) == 0
    history = await read_deliveries(redis, REGION, ids[0])
    assert [(r["consumer"], r["attempts"]) for r in history] == [("victim", 1), ("rescuer", 2)]
    assert history[0]["acked_at"] is None and history[1]["acked_at"] is not None


async def test_a_handler_that_always_fails_dead_letters_with_its_reason(redis):
    await publish(redis, 1)
    attempts: list[int] = []

    async def fails(entry):
        attempts.append(entry.attempts)
        raise ValueError("fare table missing")

    c = consumer(redis, "c1", fails, max_deliveries=3)
    task = asyncio.create_task(c.run())
    dead = await eventually(lambda: redis.xrange(keys.dead_letters(REGION)))
    c.stop()
    await task
    assert attempts == [1, 2, 3]
    assert len(dead) == 1
    fields = dead[0][1]
    assert fields["reason"] == "ValueError: fare table missing"
    assert fields["attempts"] == "3" and fields["group"] == GROUP
    assert fields["type"] == "trip.requested" and "env" in fields
    assert await pending_count(redis) == 0  # acknowledged with the dead letter


async def test_a_redelivered_entry_changes_nothing_twice(redis):
    await publish(redis, 3)
    count_once = redis.register_script(COUNT_ONCE)
    crashed: set[str] = set()

    async def effect_then_crash_once(entry):
        env = entry.envelope
        await count_once(
            keys=[keys.seen(REGION, GROUP, env["id"]), "counts"], args=[env["trip_id"]]
        )
        if entry.id not in crashed:
            crashed.add(entry.id)
            raise ConnectionError("lost the connection before the ack")

    c = consumer(redis, "c1", effect_then_crash_once)
    task = asyncio.create_task(c.run())
    await eventually(lambda: c.stats.handled == 3)
    c.stop()
    await task
    assert c.stats.failed == 3
    assert await redis.hgetall("counts") == {f"trp_sf_{i}": "1" for i in range(3)}


async def test_shutdown_loses_nothing(redis):
    ids = await publish(redis, 200)
    handled: list[str] = []

    async def slow(entry):
        handled.append(entry.id)
        await asyncio.sleep(0.001)

    first = consumer(redis, "first", slow, batch=20)
    task = asyncio.create_task(first.run())
    await eventually(lambda: len(handled) >= 30)
    first.stop()
    await task
    # The batch in hand was finished and acknowledged: nothing is left pending.
    assert await pending_count(redis) == 0
    assert 30 <= len(handled) < 200

    second = consumer(redis, "second", slow, batch=50)
    task = asyncio.create_task(second.run())
    await eventually(lambda: len(handled) == 200)
    second.stop()
    await task
    assert sorted(handled) == sorted(ids) and len(set(handled)) == 200


async def consumer_names(redis) -> set[str]:
    return {c["name"] for c in await redis.xinfo_consumers(STREAM, GROUP)}


async def test_a_consumer_that_stops_with_nothing_pending_leaves_its_group(redis):
    await publish(redis, 5)
    handled: list[str] = []

    async def handler(entry):
        handled.append(entry.id)

    await ensure_group(redis, STREAM, GROUP)
    other = await redis.xreadgroup(GROUP, "other", {STREAM: ">"}, count=1)  # stays pending
    c = consumer(redis, "c1", handler, claim_idle_ms=60_000)
    task = asyncio.create_task(c.run())
    await eventually(lambda: len(handled) == 4)
    assert await consumer_names(redis) == {"other", "c1"}
    c.stop()
    await task
    # Only the stopped one is gone; the entry pending for `other` is still there.
    assert await consumer_names(redis) == {"other"}
    assert await pending_count(redis) == 1 and other


async def test_a_consumer_that_stops_with_entries_pending_stays(redis):
    await publish(redis, 3)
    attempts: list[str] = []

    async def failing(entry):
        attempts.append(entry.id)
        raise RuntimeError("not now")

    # Failed entries stay pending for it; deleting it would make them unclaimable.
    c = consumer(redis, "c1", failing, claim_idle_ms=60_000, max_deliveries=100)
    task = asyncio.create_task(c.run())
    await eventually(lambda: len(attempts) == 3)
    c.stop()
    await task
    consumers = await redis.xinfo_consumers(STREAM, GROUP)
    assert [(x["name"], x["pending"]) for x in consumers] == [("c1", 3)]


async def test_trim_keeps_what_any_group_still_needs(redis):
    ids = await publish(redis, 10)
    await ensure_group(redis, STREAM, "slow-group")
    await ensure_group(redis, STREAM, GROUP)
    # GROUP reads everything and acks the first 6; slow-group reads 3, acks none.
    reply = await redis.xreadgroup(GROUP, "a", {STREAM: ">"}, count=10)
    assert len(reply[0][1]) == 10
    await redis.xack(STREAM, GROUP, *ids[:6])
    await redis.xreadgroup("slow-group", "b", {STREAM: ">"}, count=3)
    await trim_stream(redis, STREAM, keep_ms=0)
    assert [sid for sid, _ in await redis.xrange(STREAM)] == ids  # slow-group pends on the first
    await redis.xack(STREAM, "slow-group", *ids[:3])
    await trim_stream(redis, STREAM, keep_ms=0)
    # slow-group has not read past ids[2]; GROUP still pends ids[6:].
    assert [sid for sid, _ in await redis.xrange(STREAM)] == ids[3:]
    await redis.xreadgroup("slow-group", "b", {STREAM: ">"}, count=10)
    await redis.xack(STREAM, "slow-group", *ids)
    await trim_stream(redis, STREAM, keep_ms=0)
    assert [sid for sid, _ in await redis.xrange(STREAM)] == ids[6:]


async def test_a_busy_stream_stopped_with_reads_on_the_wire_loses_nothing(redis):
    # Full batches: the consumer keeps the next read on the wire while it
    # handles one and writes acks without waiting for them. A stop takes
    # every reply still owed: the entries read ahead are handled and acked.
    ids = await publish(redis, 300)
    handled: list[str] = []
    c: StreamConsumer

    async def handler(entry):
        handled.append(entry.id)
        if len(handled) == 25:
            c.stop()

    c = consumer(redis, "c1", handler, batch=10, record_deliveries=False,
                 claim_idle_ms=60_000)
    await c.run()
    assert 25 < len(handled) < 300  # more than the batch in hand: those read ahead
    assert handled == ids[: len(handled)]
    assert c.stats.handled == len(handled)  # every ack confirmed
    assert await pending_count(redis) == 0
    assert await consumer_names(redis) == set()


async def test_acks_lost_with_the_connection_are_delivered_again(redis):
    # The consumer's own connection is killed while acks are written and not
    # yet confirmed: their entries stay pending and come back (at least
    # once); the consumer reconnects and nothing is left behind.
    ids = await publish(redis, 400)
    handled: list[str] = []
    killed = asyncio.Event()

    async def handler(entry):
        handled.append(entry.id)
        if len(handled) == 150 and not killed.is_set():
            killed.set()
            for client in await redis.client_list():
                if client["cmd"] in ("xreadgroup", "xack"):
                    await redis.client_kill_filter(_id=client["id"])

    c = consumer(redis, "c1", handler, batch=20, record_deliveries=False,
                 claim_idle_ms=200)
    task = asyncio.create_task(c.run())
    await eventually(lambda: set(handled) == set(ids), timeout=20)
    await eventually(lambda: c.stats.handled >= 400, timeout=20)
    c.stop()
    await task
    assert killed.is_set()
    assert await pending_count(redis) == 0
    assert c.stats.claimed > 0  # those read or acked on the killed connection


async def test_entries_of_different_keys_are_handled_at_once_in_order_per_key(redis):
    # Trips 0, 1, 2, 0, 1, 2, ...: three keys, four entries each, one batch.
    ids = await publish(redis, 12)
    key_of = {sid: f"trp_sf_{i % 3}" for i, sid in enumerate(ids)}
    running: set[str] = set()
    most = 0
    log: list[tuple[str, str]] = []

    async def handler(entry):
        nonlocal most
        key = key_of[entry.id]
        assert all(key_of[other] != key for other in running)  # one at a time per key
        running.add(entry.id)
        most = max(most, len(running))
        log.append(("start", entry.id))
        for _ in range(3):  # a few round trips' worth of yielding
            await asyncio.sleep(0)
        running.discard(entry.id)
        log.append(("end", entry.id))

    c = consumer(redis, "c1", handler, batch=12, ordered_by=lambda e: [key_of[e.id]])
    await ensure_group(redis, STREAM, GROUP)
    assert await c.step() == 12  # one batch
    assert most == 3  # the three keys at once, never two entries of one key
    for k in range(3):
        mine = [sid for sid in ids if key_of[sid] == f"trp_sf_{k}"]
        assert [sid for what, sid in log if what == "start" and sid in mine] == mine
    assert await pending_count(redis) == 0


async def test_a_failure_among_concurrent_entries_leaves_only_it_pending(redis):
    ids = await publish(redis, 6)

    async def handler(entry):
        await asyncio.sleep(0)
        if entry.id == ids[2]:
            raise RuntimeError("not now")

    c = consumer(redis, "c1", handler, batch=6, claim_idle_ms=60_000,
                 ordered_by=lambda e: [e.fields["trip_id"]])
    await ensure_group(redis, STREAM, GROUP)
    assert await c.step() == 6
    pending = await redis.xpending_range(STREAM, GROUP, min="-", max="+", count=10)
    assert [p["message_id"] for p in pending] == [ids[2]]
    assert c.stats.handled == 5 and c.stats.failed == 1
    history = await read_deliveries(redis, REGION, ids[2])
    assert history[0]["acked_at"] is None and "RuntimeError: not now" in history[0]["error"]
