"""Rate limits in Redis: per session token, and failed logins per name and address."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from tests.helpers.gateway import PASSWORD, bearer, rider_body, sign_up_and_login


async def test_the_token_bucket_allows_a_burst_of_twice_the_rate(
    make_client, gw_settings
):
    client = await make_client(replace(gw_settings, rate_limit_per_token=3))
    session = await sign_up_and_login(client, "bursty")
    h = bearer(session["token"])
    statuses = [(await client.get("/v1/me", headers=h)).status for _ in range(12)]
    # A burst of 6 passes; the rest of a quick run is refused (refill 3/s may add one).
    assert statuses[:6] == [200] * 6
    assert statuses.count(429) >= 5
    resp = await client.get("/v1/me", headers=h)
    assert resp.status == 429
    assert resp.content_type == "application/problem+json"
    assert int(resp.headers["Retry-After"]) >= 1
    # Another session has its own bucket.
    other = await sign_up_and_login(client, "calm")
    assert (await client.get("/v1/me", headers=bearer(other["token"]))).status == 200


async def test_zero_turns_the_token_limit_off(client):
    session = await sign_up_and_login(client, "unlimited")
    h = bearer(session["token"])
    results = await asyncio.gather(*(client.get("/v1/me", headers=h) for _ in range(150)))
    assert {r.status for r in results} == {200}


async def test_failed_logins_lock_the_user_name_whatever_the_password(client):
    await client.post("/v1/riders", json=rider_body("target"))
    for _ in range(3):  # LOGIN_FAILURES_LIMIT=3 in these tests
        resp = await client.post("/v1/sessions", json={"user_name": "target", "password": "bad-guess"})
        assert resp.status == 401
    locked = await client.post("/v1/sessions", json={"user_name": "target", "password": PASSWORD})
    assert locked.status == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 15 * 60
    assert locked.content_type == "application/problem+json"
    # Other names are not affected.
    await client.post("/v1/riders", json=rider_body("bystander"))
    ok = await client.post("/v1/sessions", json={"user_name": "bystander", "password": PASSWORD})
    assert ok.status == 201


async def test_successful_logins_and_sign_ups_are_never_limited(client):
    await client.post("/v1/riders", json=rider_body("regular"))
    for _ in range(10):
        resp = await client.post("/v1/sessions", json={"user_name": "regular", "password": PASSWORD})
        assert resp.status == 201
    for i in range(10):
        assert (await client.post("/v1/riders", json=rider_body(f"many{i}"))).status == 201


async def test_failed_logins_from_one_address_are_limited_at_ten_times(
    make_client, gw_settings
):
    client = await make_client(replace(gw_settings, login_failures_limit=1))
    await client.post("/v1/riders", json=rider_body("legit"))
    # Ten different names fail once each: each name is now locked, and so is the address.
    for i in range(10):
        resp = await client.post("/v1/sessions", json={"user_name": f"ghost{i}", "password": "x" * 8})
        assert resp.status == 401
    resp = await client.post("/v1/sessions", json={"user_name": "legit", "password": PASSWORD})
    assert resp.status == 429
    assert "address" in (await resp.json())["detail"]


async def test_the_window_ends(make_client, gw_settings, redis):
    client = await make_client(replace(gw_settings, login_failures_limit=1, login_window_s=1))
    await client.post("/v1/riders", json=rider_body("patient"))
    assert (await client.post("/v1/sessions", json={"user_name": "patient", "password": "nope-nope"})).status == 401
    locked = await client.post("/v1/sessions", json={"user_name": "patient", "password": PASSWORD})
    assert locked.status == 429
    assert locked.headers["Retry-After"] == "1"
    from tests.waiting import eventually

    async def unlocked():
        resp = await client.post("/v1/sessions", json={"user_name": "patient", "password": PASSWORD})
        return resp.status == 201

    await eventually(unlocked, timeout=5, interval=0.1)
