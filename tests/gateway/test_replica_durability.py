"""WAIT_REPLICAS in the gateway, on a real replica: a sign-up, a login, a
logout and an idempotent trip's stored answer are on the replica (in its AOF)
when the client has its answer, and with the replica frozen they are 503
(problem+json, Retry-After) within about the wait's timeout.

The gateway app is built in-process on a primary with one replica; the
replica is read at once after each answer, without waiting or retrying.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from common import errors, keys
from common.ids import TRIP, new_id
from common.redisconn import create_redis
from common.scripts import WAIT_TIMEOUT_MS
from driver_service.app import Workers
from driver_service.app import create_app as create_driver_app
from driver_service.settings import DriverSettings
from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.idempotency import Idempotency
from gateway.identity import token_digest
from gateway.scripts import GatewayScripts
from tests.helpers.gateway import PASSWORD, bearer, rider_body
from tests.helpers.settings import service_settings
from tests.replicas import Frozen, primary_with_replica
from tests.waiting import eventually

# A write no replica confirms is answered when the wait times out: allow for
# a loaded machine (the sign-up also hashes a password).
LATE_S = WAIT_TIMEOUT_MS / 1000 + 2.0
RIDER = "rdr_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8"
CAR = {"make": "Toyota", "model": "Prius", "color": "white", "plate": "7ABC123", "seats": 4}


@pytest.fixture
async def pair(tmp_path: Path):
    """A primary and its replica, both AOF `appendfsync always`."""
    async with primary_with_replica(tmp_path) as servers:
        yield servers


@pytest.fixture
async def on_replica(pair):
    client = create_redis(pair[1].url)
    yield client
    await client.aclose()


@pytest.fixture
async def gateway(aiohttp_client, pair, gw_settings):
    settings = replace(gw_settings, redis_url=pair[0].url, wait_replicas=1)
    return await aiohttp_client(create_app(settings))


async def sign_up(client, user_name: str):
    return await client.post("/v1/riders", json=rider_body(user_name))


async def login(client, user_name: str):
    return await client.post(
        "/v1/sessions", json={"user_name": user_name, "password": PASSWORD}
    )


async def assert_unconfirmed(resp, t0: float) -> None:
    """503 problem+json with Retry-After, once the wait timed out."""
    took = time.monotonic() - t0
    assert resp.status == 503, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert resp.headers.get("Retry-After") == "1"
    assert (await resp.json())["status"] == 503
    assert WAIT_TIMEOUT_MS / 1000 * 0.9 <= took < LATE_S, took


async def test_sign_up_login_and_logout_are_on_the_replica_at_once(gateway, on_replica):
    for i in range(5):
        user_name = f"replicated{i}"
        resp = await sign_up(gateway, user_name)
        assert resp.status == 201, await resp.text()
        rider_id = (await resp.json())["id"]
        # Read from the replica at once: no waiting, no retry.
        account = orjson.loads(await on_replica.get(keys.account(user_name)))
        assert account["subject_id"] == rider_id and account["state"] == "active"
        profile = orjson.loads(await on_replica.get(keys.subject(rider_id)))
        assert profile["user_name"] == user_name

        resp = await login(gateway, user_name)
        assert resp.status == 201, await resp.text()
        token = (await resp.json())["token"]
        session = keys.session(token_digest(token))
        assert (await on_replica.hgetall(session))["subject_id"] == rider_id

        resp = await gateway.get("/v1/me", headers=bearer(token))
        assert resp.status == 200, await resp.text()
        resp = await gateway.delete("/v1/sessions/current", headers=bearer(token))
        assert resp.status == 204, await resp.text()
        assert await on_replica.exists(session) == 0


async def test_with_the_replica_frozen_sign_up_login_and_logout_are_503(
    pair, gateway, on_replica
):
    _, replica = pair
    resp = await sign_up(gateway, "before")
    assert resp.status == 201, await resp.text()
    resp = await login(gateway, "before")
    assert resp.status == 201, await resp.text()
    token = (await resp.json())["token"]

    with Frozen(replica):
        t0 = time.monotonic()
        await assert_unconfirmed(await sign_up(gateway, "frozen"), t0)
        t0 = time.monotonic()
        await assert_unconfirmed(await login(gateway, "before"), t0)
        t0 = time.monotonic()
        await assert_unconfirmed(
            await gateway.delete("/v1/sessions/current", headers=bearer(token)), t0
        )

    # The replica back: the unconfirmed sign-up was undone, so the user name
    # is free and the retry signs up afresh; login and logout work again.
    resp = await sign_up(gateway, "frozen")
    assert resp.status == 201, await resp.text()
    assert await on_replica.get(keys.account("frozen")) is not None
    resp = await login(gateway, "frozen")
    assert resp.status == 201, await resp.text()
    fresh = (await resp.json())["token"]
    assert await on_replica.exists(keys.session(token_digest(fresh))) == 1
    resp = await gateway.get("/v1/me", headers=bearer(fresh))
    assert resp.status == 200, await resp.text()
    resp = await gateway.delete("/v1/sessions/current", headers=bearer(fresh))
    assert resp.status == 204, await resp.text()
    assert await on_replica.exists(keys.session(token_digest(fresh))) == 0
    # The 503 logout meant "not confirmed", not "not done": the primary had
    # deleted the session, and the replica, running again, catches up.
    resp = await gateway.get("/v1/me", headers=bearer(token))
    assert resp.status == 401, await resp.text()
    old = keys.session(token_digest(token))
    await eventually(lambda: _gone(on_replica, old), message="the replica kept the session")


async def _gone(client, key: str) -> bool:
    return await client.exists(key) == 0


async def test_an_idempotent_answer_is_stored_on_the_replica_first(pair, on_replica):
    _, replica = pair
    on_primary = create_redis(pair[0].url)
    idem = Idempotency(GatewayScripts(on_primary), GatewaySettings(idempotency_wait_s=3),
                       lease_s=0.5, wait_replicas=1)
    attempts = []

    leases_on_replica = []

    async def attempt(trip_id):
        attempts.append(trip_id)
        # Under the lease: the replica has it, with this trip id.
        leases_on_replica.append(
            [orjson.loads(raw).get("trip_id") for raw in
             [await on_replica.get(keys.idempotency(RIDER, h)) for h in hashes] if raw])
        return 201, orjson.dumps({"id": trip_id})

    hashes = [hashlib.sha256(k.encode()).hexdigest() for k in ("k1", "k2")]

    def new_trip_id() -> str:
        return new_id(TRIP, "sf")

    async def record(key: str) -> dict:
        name = keys.idempotency(RIDER, hashlib.sha256(key.encode()).hexdigest())
        raw = await on_replica.get(name)
        return orjson.loads(raw) if raw else {}

    try:
        first = await idem.run(RIDER, "k1", {"a": 1}, new_trip_id, attempt)
        assert first.status == 201 and not first.replayed
        assert (await record("k1"))["state"] == "done"

        with Frozen(replica):
            # The lease (with the trip id it reserves) is not confirmed: 503
            # before any attempt, and the lease is given up. A lease lost in a
            # failover would let the retry reserve another id: a second trip.
            t0 = time.monotonic()
            with pytest.raises(errors.Unavailable):
                await idem.run(RIDER, "k2", {"a": 2}, new_trip_id, attempt)
            assert time.monotonic() - t0 < LATE_S
            assert len(attempts) == 1
            # A replay confirms the stored answer first: 503 too.
            with pytest.raises(errors.Unavailable):
                await idem.run(RIDER, "k1", {"a": 1}, new_trip_id, attempt)
        assert len(attempts) == 1
        assert await record("k2") == {}

        # The replica back: the retry makes the attempt, its lease on the
        # replica before it; the next retry replays the stored answer.
        again = await idem.run(RIDER, "k2", {"a": 2}, new_trip_id, attempt)
        assert again.status == 201 and not again.replayed
        assert len(attempts) == 2
        replay = await idem.run(RIDER, "k2", {"a": 2}, new_trip_id, attempt)
        assert replay.replayed and orjson.loads(replay.body)["id"] == attempts[1]
        assert len(attempts) == 2
        assert (await record("k2"))["state"] == "done"
        assert all(trip_id in seen for trip_id, seen in zip(attempts, leases_on_replica))
    finally:
        await on_primary.aclose()


async def test_a_driver_sign_up_is_on_the_replica_or_undone(
    aiohttp_client, aiohttp_server, pair, on_replica, gw_settings
):
    """driver_service without the wait (WAIT_REPLICAS=0), so that with the
    replica frozen it is the gateway's own confirmation (the profile, the
    account's activation) that fails the sign-up."""
    _, replica = pair
    driver_settings = service_settings(DriverSettings, pair[0].url, wait_replicas=0)
    drivers = await aiohttp_server(create_driver_app(driver_settings, Workers(
        dispatch=False, driver_stats=False, sweeper=False, maintenance=False)))
    settings = replace(gw_settings, redis_url=pair[0].url, wait_replicas=1,
                       driver_service_url=str(drivers.make_url("")).rstrip("/"),
                       upstream_timeout_s=5.0)
    gateway = await aiohttp_client(create_app(settings))

    def body(user_name: str) -> dict:
        return {**rider_body(user_name), "car": CAR, "product": "standard"}

    resp = await gateway.post("/v1/drivers", json=body("wheels"))
    assert resp.status == 201, await resp.text()
    driver_id = (await resp.json())["id"]
    account = orjson.loads(await on_replica.get(keys.account("wheels")))
    assert account["subject_id"] == driver_id and account["state"] == "active"
    assert orjson.loads(await on_replica.get(keys.subject(driver_id)))["role"] == "driver"

    with Frozen(replica):
        t0 = time.monotonic()
        await assert_unconfirmed(await gateway.post("/v1/drivers", json=body("stuck")), t0)
    # Undone on the primary: the user name is free, nobody can log in with it.
    resp = await login(gateway, "stuck")
    assert resp.status == 401, await resp.text()
    resp = await gateway.post("/v1/drivers", json=body("stuck"))
    assert resp.status == 201, await resp.text()
    assert orjson.loads(await on_replica.get(keys.account("stuck")))["state"] == "active"
