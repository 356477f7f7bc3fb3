"""The gateway's own hardening, through the real factory on the real test
Redis: headers, what is public, text that hides itself, the password policy,
the hashing queue, the client address behind a proxy, the ops password."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from common import errors
from gateway.app import OpsPasswordRefused, create_app
from gateway.clientaddr import ClientAddress
from gateway.passwords import NEW_PASSWORD, Hasher, HashQueueFull
from gateway.upstream import Upstream
from tests.helpers.gateway import bearer, ops_headers, rider_body, sign_up_and_login
from tests.waiting import eventually

HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def assert_hardened(resp) -> None:
    for name, value in HEADERS.items():
        assert resp.headers.get(name) == value, (resp.url, name, resp.headers.get(name))
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert resp.headers["Server"] == "ridehail", resp.headers["Server"]


async def test_every_kind_of_response_carries_the_security_headers(client):
    session = await sign_up_and_login(client, "headers")
    for path, status in (("/", 200), ("/static/dashboard.js", 200), ("/healthz", 200),
                         ("/openapi.json", 200), ("/v1/me", 401), ("/nowhere", 404)):
        resp = await client.get(path)
        assert resp.status == status, path
        assert_hardened(resp)
    # A streamed answer (its headers go out before the handler returns).
    ops = await ops_headers(client)
    resp = await client.get("/v1/ops/events", headers=ops)
    assert resp.status == 200
    assert_hardened(resp)
    resp.close()
    resp = await client.get("/v1/me", headers=bearer(session["token"]))
    assert resp.status == 200
    assert_hardened(resp)
    assert "aiohttp" not in resp.headers["Server"] and "Python" not in resp.headers["Server"]


async def test_the_dashboard_needs_nothing_its_csp_refuses(client):
    page = await (await client.get("/")).text()
    # No inline script or style, no other origin: default-src 'self' holds.
    assert "<script" in page and "<script>" not in page and "<style" not in page
    assert " style=" not in page and " on" + "click=" not in page
    assert "http://" not in page and "https://" not in page


async def test_metrics_are_for_the_ops_role_and_readiness_details_too(client):
    assert (await client.get("/metrics")).status == 401
    rider = await sign_up_and_login(client, "notops")
    assert (await client.get("/metrics", headers=bearer(rider["token"]))).status == 403
    ops = await ops_headers(client)
    assert (await client.get("/metrics", headers=ops)).status == 200
    anonymous = await (await client.get("/readyz")).json()
    assert "checks" not in anonymous
    assert "checks" in await (await client.get("/readyz", headers=ops)).json()


@pytest.mark.parametrize("field,value", [
    ("first_name", "Ada\u202eecalevol"),  # right-to-left override
    ("last_name", "Love\u200blace"),  # zero-width space
    ("first_name", "Ada\x00"),  # NUL
    ("bio", "hello\u2066world"),  # bidi isolate
    ("bio", "bell\x07"),
])
async def test_names_and_text_refuse_characters_that_hide_or_reorder(client, field, value):
    resp = await client.post("/v1/riders", json=rider_body("hidden", **{field: value}))
    assert resp.status == 422
    body = await resp.json()
    assert [e["field"] for e in body["errors"]] == [field]
    assert "control, zero-width or text-direction" in body["errors"][0]["message"]
    assert (await client.post("/v1/sessions", json={
        "user_name": "hidden", "password": "correct horse battery"})).status == 401


async def test_free_text_keeps_lines_and_any_script(client):
    resp = await client.post("/v1/riders", json=rider_body(
        "scripts", first_name="Zoë", last_name="حداد", bio="line one\nline two 👩‍🔧"
        .replace("\u200d", "")))
    assert resp.status == 201, await resp.text()


@pytest.mark.parametrize("password", ["password1", "12345678", "qwertyuiop", "short"])
async def test_a_common_or_short_password_is_refused(client, password):
    resp = await client.post("/v1/riders", json=rider_body("weakling", password=password))
    assert resp.status == 422
    assert [e["field"] for e in (await resp.json())["errors"]] == ["password"]


@pytest.mark.parametrize("password", ["", "REPLACE-WITH-A-LONG-RANDOM-PASSWORD",
                                      "change-me-ops-password", "short-ops-pw", "password1"])
def test_the_gateway_refuses_to_start_with_a_weak_ops_password(gw_settings, password):
    settings = replace(gw_settings, ops_password=password)
    if not password:
        create_app(settings)  # no ops account at all is allowed
        return
    with pytest.raises(OpsPasswordRefused, match="OPS_PASSWORD"):
        create_app(settings)


async def test_the_hashing_queue_is_bounded_and_logins_go_first(gw_settings):
    hasher = Hasher(replace(gw_settings, hash_workers=1, hash_queue_max=4))
    try:
        encoded = await hasher.hash("a password for the test")
        order: list[str] = []
        release = threading.Event()

        async def new_password(i: int) -> None:
            await hasher.hash(f"sign-up {i}")
            order.append(f"signup{i}")

        async def login() -> None:
            assert await hasher.verify(encoded, "a password for the test")
            order.append("login")

        # The one thread holds a job until released; then three sign-ups and
        # a login wait (the queue's four places): one more is refused.
        started = threading.Event()

        def hold() -> None:
            started.set()
            release.wait(30)

        in_hand = asyncio.ensure_future(hasher._run(NEW_PASSWORD, hold))
        await eventually(lambda: started.is_set() and hasher.waiting == 0,
                         message="the thread took no job")
        waiting = [asyncio.ensure_future(new_password(i)) for i in range(3)]
        await asyncio.sleep(0)
        logging_in = asyncio.ensure_future(login())
        await asyncio.sleep(0)
        assert hasher.waiting == 4
        with pytest.raises(HashQueueFull):
            await hasher.hash("one too many")
        release.set()
        await asyncio.gather(in_hand, *waiting, logging_in)
        # The login, queued after three sign-ups, was hashed before them.
        assert order[0] == "login", order
    finally:
        release.set()
        hasher.close()


async def test_a_full_hashing_queue_is_a_503_with_retry_after(make_client, gw_settings):
    client = await make_client(replace(gw_settings, hash_queue_max=1, hash_workers=1,
                                       signups_per_addr=0))
    replies = await asyncio.gather(*(
        client.post("/v1/riders", json=rider_body(f"crowd{i}")) for i in range(12)))
    statuses = sorted(r.status for r in replies)
    assert 503 in statuses and 201 in statuses and set(statuses) <= {201, 503}, statuses
    refused = next(r for r in replies if r.status == 503)
    assert int(refused.headers["Retry-After"]) >= 1
    assert "password checks waiting" in (await refused.json())["detail"]


def _request(peer: str, forwarded: str | None) -> web.Request:
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    req = make_mocked_request("GET", "/", headers=headers)
    req._transport_peername = (peer, 1234)  # what request.remote reads
    return req


@pytest.mark.parametrize("trusted,peer,forwarded,expected", [
    ((), "198.51.100.1", "203.0.113.9", "198.51.100.1"),  # no proxy trusted: header ignored
    (("10.0.0.0/8",), "198.51.100.1", "203.0.113.9", "198.51.100.1"),  # not from a proxy
    (("10.0.0.0/8",), "10.1.2.3", "203.0.113.9", "203.0.113.9"),
    # The client's own (forged) entries are left of the one the proxy appended.
    (("10.0.0.0/8",), "10.1.2.3", "1.2.3.4, 203.0.113.9", "203.0.113.9"),
    (("10.0.0.0/8",), "10.1.2.3", "203.0.113.9, 10.9.9.9", "203.0.113.9"),
    (("10.0.0.0/8",), "10.1.2.3", "not-an-address", "10.1.2.3"),
    (("10.0.0.0/8",), "10.1.2.3", None, "10.1.2.3"),
])
def test_the_client_address_comes_from_a_trusted_proxy_only(trusted, peer, forwarded, expected):
    assert ClientAddress(trusted).of(_request(peer, forwarded)) == expected


def test_a_bad_trusted_proxy_entry_stops_the_gateway():
    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        ClientAddress(["10.0.0.0/8", "a-host-name"])


async def test_waiting_for_a_pooled_connection_is_not_an_upstream_failure(
    aiohttp_server, gw_settings
):
    """A pool that is all in use answers 503 'no free connection' once the call's
    time is up, and the breaker does not count it against the upstream."""
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_get("/slow", slow)
    server = await aiohttp_server(app)
    upstream = Upstream("slowpoke", str(server.make_url("")), 0.3,
                        replace(gw_settings, breaker_failures=1), connections=1)
    await upstream.open()
    try:
        holding = asyncio.ensure_future(upstream.get("/slow", timeout_s=10, retries=0))
        await asyncio.sleep(0.05)
        for _ in range(3):
            with pytest.raises(errors.Unavailable, match="no free connection"):
                await upstream.get("/slow", retries=0)
        assert upstream.breaker.state_name == "closed"
        release.set()
        assert (await holding).status == 200
        assert (await upstream.get("/slow")).status == 200
    finally:
        release.set()
        await upstream.close()
