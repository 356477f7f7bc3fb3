"""Accounts, credentials and sessions, through the real app on real Redis."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace

from common import keys
from tests.helpers.gateway import PASSWORD, bearer, rider_body, sign_up_and_login
from tests.waiting import eventually


async def test_rider_sign_up_returns_the_profile_without_the_password(client):
    resp = await client.post("/v1/riders", json=rider_body("ada", extra="ignored", id="x"))
    assert resp.status == 201
    profile = await resp.json()
    assert profile["id"].startswith("rdr_sf_")
    assert profile["role"] == "rider"
    assert profile["region"] == "sf"
    assert profile["user_name"] == "ada"
    assert profile["age"] == 36
    assert "password" not in profile and "extra" not in profile
    assert PASSWORD not in await resp.text()


async def test_every_invalid_field_is_reported_at_once(client):
    body = {
        "user_name": "A!",
        "password": "short",
        "first_name": "",
        "email": "not-an-address",
        "age": 0,
        "bio": "x" * 501,
        "region": "atlantis",
    }
    resp = await client.post("/v1/riders", json=body)
    assert resp.status == 422
    assert resp.content_type == "application/problem+json"
    problem = await resp.json()
    fields = {e["field"] for e in problem["errors"]}
    assert fields == {
        "user_name", "password", "first_name", "last_name", "email", "age", "bio", "region"
    }
    assert all(e["message"] for e in problem["errors"])


async def test_types_are_not_coerced(client):
    resp = await client.post("/v1/riders", json=rider_body("coerce", age="36"))
    assert resp.status == 422
    assert [e["field"] for e in (await resp.json())["errors"]] == ["age"]


async def test_an_unknown_region_is_422_and_a_known_one_is_the_home(client):
    resp = await client.post("/v1/riders", json=rider_body("nowhere", region="nyc"))
    assert resp.status == 422
    resp = await client.post("/v1/riders", json=rider_body("home", region="sf"))
    assert resp.status == 201
    assert (await resp.json())["region"] == "sf"


async def test_user_names_are_unique_even_under_concurrent_sign_ups(client, redis):
    results = await asyncio.gather(
        *(client.post("/v1/riders", json=rider_body("racer", first_name=f"R{i}")) for i in range(8))
    )
    statuses = sorted(r.status for r in results)
    assert statuses == [201] + [409] * 7
    conflict = next(r for r in results if r.status == 409)
    assert (await conflict.json())["errors"][0]["field"] == "user_name"
    # The losers left no profile behind.
    profiles = [k async for k in redis.scan_iter("gw:subject:rdr_*")]
    assert len(profiles) == 1


async def test_driver_sign_up_validates_the_car_and_product(client):
    body = {
        "user_name": "drv1",
        "password": PASSWORD,
        "first_name": "Dee",
        "last_name": "River",
        "email": "dee@example.com",
        "car": {"make": "Toyota", "model": "Prius", "color": "white", "plate": "7ABC123",
                "seats": 9},
        "product": "limo",
    }
    resp = await client.post("/v1/drivers", json=body)
    assert resp.status == 422
    fields = {e["field"] for e in (await resp.json())["errors"]}
    assert fields == {"car.seats", "product"}


async def test_login_logout_and_me(client):
    session = await sign_up_and_login(client, "grace")
    assert session["role"] == "rider"
    assert session["subject_id"].startswith("rdr_sf_")
    assert session["expires_at"].endswith("Z")
    me = await client.get("/v1/me", headers=bearer(session["token"]))
    assert me.status == 200
    assert (await me.json())["user_name"] == "grace"
    out = await client.delete("/v1/sessions/current", headers=bearer(session["token"]))
    assert out.status == 204
    again = await client.get("/v1/me", headers=bearer(session["token"]))
    assert again.status == 401
    assert again.headers["WWW-Authenticate"].startswith("Bearer")


async def test_unknown_user_and_wrong_password_look_the_same(client):
    await client.post("/v1/riders", json=rider_body("alan"))
    wrong = await client.post("/v1/sessions", json={"user_name": "alan", "password": "nope-nope"})
    unknown = await client.post("/v1/sessions", json={"user_name": "nobody", "password": "x" * 9})
    assert wrong.status == unknown.status == 401
    a, b = await wrong.json(), await unknown.json()
    assert a == b


async def test_only_a_digest_of_the_token_is_stored(client, redis):
    session = await sign_up_and_login(client, "hopper")
    token = session["token"]
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert await redis.exists(keys.session(digest))
    async for key in redis.scan_iter("*"):
        assert token not in key
        if await redis.type(key) == "hash":
            assert token not in str(await redis.hgetall(key))
    # The password is stored as an argon2id hash only.
    account = await redis.get(keys.account("hopper"))
    assert "$argon2id$" in account and PASSWORD not in account


async def test_the_session_slides_and_stops_at_its_absolute_limit(
    make_client, gw_settings, redis
):
    settings = replace(gw_settings, session_ttl_s=30, session_max_s=2)
    client = await make_client(settings)
    session = await sign_up_and_login(client, "slider")
    digest = hashlib.sha256(session["token"].encode()).hexdigest()
    # Capped by the absolute limit, not the sliding TTL.
    assert 0 < await redis.pttl(keys.session(digest)) <= 2000
    assert (await client.get("/v1/me", headers=bearer(session["token"]))).status == 200

    async def expired():
        resp = await client.get("/v1/me", headers=bearer(session["token"]))
        return resp.status == 401

    await eventually(expired, timeout=5, interval=0.1)


async def test_each_request_slides_the_expiry(make_client, gw_settings, redis):
    settings = replace(gw_settings, session_ttl_s=5)
    client = await make_client(settings)
    session = await sign_up_and_login(client, "slide2")
    key = keys.session(hashlib.sha256(session["token"].encode()).hexdigest())
    await redis.pexpire(key, 1000)
    assert (await client.get("/v1/me", headers=bearer(session["token"]))).status == 200
    assert await redis.pttl(key) > 4000


async def test_sessions_survive_a_new_gateway_instance(make_client, gw_settings):
    first = await make_client(gw_settings)
    session = await sign_up_and_login(first, "durable")
    await first.close()
    # A second app instance shares nothing in memory with the first.
    second = await make_client(gw_settings)
    resp = await second.get("/v1/me", headers=bearer(session["token"]))
    assert resp.status == 200


async def test_the_ops_account_comes_from_the_settings(client):
    resp = await client.post(
        "/v1/sessions", json={"user_name": "ops", "password": "ops-gateway-tests-1"}
    )
    assert resp.status == 201
    session = await resp.json()
    assert session["role"] == "ops"
    me = await client.get("/v1/me", headers=bearer(session["token"]))
    assert (await me.json())["role"] == "ops"
    taken = await client.post("/v1/riders", json=rider_body("ops"))
    assert taken.status == 409


async def test_a_malformed_or_foreign_authorization_header_is_401(client):
    for value in ("Basic abc", "Bearer", "Bearer a b", "Bearer " + "x" * 500, "Bearer short"):
        resp = await client.get("/v1/me", headers={"Authorization": value})
        assert resp.status == 401, value
        assert resp.content_type == "application/problem+json"
    assert (await client.get("/v1/me")).status == 401
