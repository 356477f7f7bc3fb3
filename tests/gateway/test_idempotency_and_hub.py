"""Idempotency records and the event hub against the real Redis."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from common.scripts import load as load_functions
from common import errors, keys
from common.embedded import EmbeddedRedis, free_port
from common.events import entry_fields, envelope
from common.ids import TRIP, new_id
from common.redisconn import create_redis
from gateway.config import GatewaySettings
from gateway.idempotency import Idempotency
from gateway.live import DROPPED, EventHub
from gateway.scripts import GatewayScripts
from tests.waiting import eventually

RIDER = "rdr_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8"


@pytest.fixture
def idem(redis):
    return Idempotency(GatewayScripts(redis), GatewaySettings(idempotency_wait_s=3), lease_s=0.5)


def new_trip_id() -> str:
    return new_id(TRIP, "sf")


async def test_concurrent_duplicates_run_once_and_replay(idem):
    calls = []
    release = asyncio.Event()

    async def attempt(trip_id):
        calls.append(trip_id)
        await release.wait()
        return 201, b'{"id": "%s"}' % trip_id.encode()

    runs = [
        asyncio.create_task(idem.run(RIDER, "k1", {"a": 1}, new_trip_id, attempt)) for _ in range(5)
    ]
    await eventually(lambda: len(calls) == 1)
    release.set()
    outcomes = await asyncio.gather(*runs)
    assert len(calls) == 1
    assert {o.body for o in outcomes} == {outcomes[0].body}
    assert sorted(o.replayed for o in outcomes) == [False, True, True, True, True]
    assert {o.status for o in outcomes} == {201}


async def test_the_same_key_with_another_body_is_422(idem):
    async def attempt(trip_id):
        return 201, b"{}"

    await idem.run(RIDER, "k2", {"a": 1}, new_trip_id, attempt)
    with pytest.raises(errors.Invalid) as info:
        await idem.run(RIDER, "k2", {"a": 2}, new_trip_id, attempt)
    assert info.value.errors[0]["field"] == "Idempotency-Key"


async def test_a_failed_attempt_stores_nothing(idem, redis):
    async def refused(trip_id):
        raise errors.Conflict("active trip")

    with pytest.raises(errors.Conflict):
        await idem.run(RIDER, "k3", {"a": 1}, new_trip_id, refused)
    assert [k async for k in redis.scan_iter("gw:idem:*")] == []

    async def works(trip_id):
        return 201, b"{}"

    outcome = await idem.run(RIDER, "k3", {"a": 1}, new_trip_id, works)
    assert not outcome.replayed


async def test_an_unknown_outcome_retries_with_the_same_trip_id(idem):
    seen = []

    async def timed_out(trip_id):
        seen.append(trip_id)
        raise errors.Timeout("slow")

    with pytest.raises(errors.Timeout):
        await idem.run(RIDER, "k4", {"a": 1}, new_trip_id, timed_out)

    async def works(trip_id):
        seen.append(trip_id)
        return 201, b"{}"

    await idem.run(RIDER, "k4", {"a": 1}, new_trip_id, works)
    assert seen[0] == seen[1]


async def test_keys_are_per_rider(idem):
    async def attempt(trip_id):
        return 201, trip_id.encode()

    a = await idem.run(RIDER, "same", {"a": 1}, new_trip_id, attempt)
    b = await idem.run(RIDER.replace("E8", "E9"), "same", {"a": 1}, new_trip_id, attempt)
    assert not b.replayed and a.body != b.body


@pytest.fixture
async def hub(redis, gw_settings):
    hub = EventHub(redis, replace(gw_settings, sse_queue_size=4, stream_block_ms=100))
    await hub.start()
    await eventually(lambda: "sf" in hub.positions)
    yield hub
    await hub.stop()


async def publish(redis, trip_id: str, n: int, type_: str = "trip.offered") -> list[str]:
    ids = []
    for i in range(n):
        env = envelope(type_, "test", trip_id=trip_id, data={"i": i})
        ids.append(await redis.xadd(keys.events("sf"), entry_fields(env)))
    return ids


async def test_the_hub_fans_out_by_trip_and_to_everyone(hub, redis):
    trip_a, trip_b = new_trip_id(), new_trip_id()
    only_a = hub.subscribe(trip_a)
    everyone = hub.subscribe(None)
    ids_a = await publish(redis, trip_a, 2)
    ids_b = await publish(redis, trip_b, 1)
    got_a = [await only_a.next() for _ in range(2)]
    assert [e.stream_id for e in got_a] == ids_a
    got_all = [await everyone.next() for _ in range(3)]
    assert [e.stream_id for e in got_all] == ids_a + ids_b
    assert only_a.queue.empty()
    hub.unsubscribe(only_a)
    hub.unsubscribe(everyone)
    assert hub.client_count == 0


async def test_a_slow_client_is_dropped_and_never_stalls_the_others(hub, redis):
    trip = new_trip_id()
    slow = hub.subscribe(trip)  # never reads
    fast = hub.subscribe(trip)
    received = []

    async def read_fast():
        while len(received) < 10:
            received.append(await fast.next())

    reader = asyncio.create_task(read_fast())
    for i in range(10):
        await publish(redis, trip, 1)
        await eventually(lambda: len(received) == i + 1)
    await reader
    assert slow.dropped
    assert await slow.next() is DROPPED
    assert all(e is not DROPPED for e in received)
    hub.unsubscribe(slow)
    hub.unsubscribe(fast)


async def test_readiness_names_a_reader_that_cannot_read_until_it_heals(gw_settings, tmp_path):
    """A gateway whose stream reader cannot read is not ready (its SSE
    clients would get no live events); it is ready again once reads work."""
    port = free_port()
    client = create_redis(f"redis://127.0.0.1:{port}/0", retries=0)
    hub = EventHub(client, replace(gw_settings, stream_block_ms=100))
    await hub.start()
    server = None
    try:

        async def not_ready() -> str:
            try:
                await hub.check()
            except RuntimeError as exc:
                return str(exc)
            return ""

        reason = await eventually(not_ready, message="a reader with no server was ready")
        assert reason.startswith("sf:")
        server = EmbeddedRedis(tmp_path / "late", port=port).start()
        load_functions(server.url)

        async def ready() -> bool:
            return await not_ready() == ""

        await eventually(ready, timeout=15, message="the reader did not heal")
        assert "sf" in hub.positions
    finally:
        await hub.stop()
        await client.aclose()
        if server is not None:
            server.stop()
