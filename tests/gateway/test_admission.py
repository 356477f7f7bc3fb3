"""Admission control: beyond the in-flight limit a request is answered 503
/problems/overloaded with Retry-After at once and changes nothing; the
operations routes, long polls and live streams are never shed."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from aiohttp import web
from prometheus_client import REGISTRY

from common.admission import BURST_S, SHED_MEMORY_S, Admission
from common.settings import Settings
from common.web import create_base_app
from tests.helpers.gateway import rider_body
from tests.waiting import eventually


def shed_count(service: str, route: str) -> float:
    return REGISTRY.get_sample_value(
        "http_requests_shed_total", {"service": service, "route": route}
    ) or 0.0


async def assert_overloaded(resp) -> None:
    assert resp.status == 503, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert resp.headers["Retry-After"] == "1"
    assert resp.headers["X-Request-ID"]
    body = await resp.json()
    assert body["type"] == "/problems/overloaded" and body["status"] == 503


async def test_beyond_the_limit_a_request_is_shed_at_once_and_changes_nothing(
    make_client, gw_settings
):
    client = await make_client(replace(gw_settings, max_in_flight=1))
    before = shed_count("gateway", "/v1/riders")
    # One sign-up in flight: its headers are in, its body is still on its way.
    url = client.make_url("/")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(b"POST /v1/riders HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 400\r\n\r\n{")
    await writer.drain()
    try:
        async def vocabulary_shed():
            resp = await client.get("/v1/vocabulary")
            await resp.read()
            return resp.status == 503

        await eventually(vocabulary_shed, message="the slow sign-up never counted as in flight")
        resp = await client.post("/v1/riders", json=rider_body("crowded"))
        await assert_overloaded(resp)
        assert shed_count("gateway", "/v1/riders") == before + 1
        gauges = {name: REGISTRY.get_sample_value(name, {"service": "gateway"})
                  for name in ("http_requests_in_flight", "http_admission_limit")}
        assert gauges == {"http_requests_in_flight": 1, "http_admission_limit": 1}
        # Never shed: health, readiness, the ops views, long polls, live streams.
        assert (await client.get("/healthz")).status == 200
        ready = await client.get("/readyz")
        assert ready.status in (200, 503)
        assert (await ready.json())["type" if ready.status == 503 else "status"] != (
            "/problems/overloaded")
        for path in ("/v1/ops/overview", "/v1/driver/offers/next", "/v1/trips/trp_x/events"):
            resp = await client.get(path)
            assert resp.status == 401, (path, resp.status)
    finally:
        writer.close()
        await writer.wait_closed()

    # The slow request gone, requests are admitted again, and the refused
    # sign-up left nothing behind: its name is free.
    async def signed_up():
        resp = await client.post("/v1/riders", json=rider_body("crowded"))
        assert resp.status in (201, 503), await resp.text()
        return resp.status == 201

    await eventually(signed_up)


async def test_zero_turns_admission_off(make_client, gw_settings):
    client = await make_client(replace(gw_settings, max_in_flight=0))
    url = client.make_url("/")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    writer.write(b"POST /v1/riders HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 400\r\n\r\n{")
    await writer.drain()
    try:
        results = await asyncio.gather(*(client.get("/v1/vocabulary") for _ in range(20)))
        assert {r.status for r in results} == {200}
    finally:
        writer.close()
        await writer.wait_closed()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_burst_that_drains_is_admitted_a_standing_queue_is_shed(aiohttp_client):
    """Past the adaptive limit (never past the ceiling), arrivals are admitted
    until in flight has stayed there for BURST_S without draining."""
    clock = Clock()
    admission = Admission("burst-test", 100, 0.01, clock=clock)
    app = create_base_app(Settings(service="burst-test"), admission)
    release = asyncio.Event()
    handled = 0

    async def work(request: web.Request) -> web.Response:
        nonlocal handled
        handled += 1
        await release.wait()
        return web.Response(text="done")

    app.router.add_get("/work", work)
    client = await aiohttp_client(app)
    floor = admission.limit
    assert 0 < floor < 100

    async def fill(n: int) -> list[asyncio.Task]:
        tasks = [asyncio.create_task(client.get("/work")) for _ in range(n)]
        await eventually(lambda: admission.in_flight >= n)
        return tasks

    # A burst above the limit is admitted, up to the ceiling.
    burst = await fill(floor + 5)
    assert handled == floor + 5
    # It drains: all answered, none shed.
    release.set()
    assert {(await t).status for t in burst} == {200}
    release.clear()
    handled = 0

    # A standing queue: at the limit for BURST_S without draining.
    standing = await fill(floor + 1)
    clock.now += BURST_S
    shed = await client.get("/work")
    await assert_overloaded(shed)
    assert handled == floor + 1
    assert (await client.get("/healthz")).status == 200
    release.set()
    assert {(await t).status for t in standing} == {200}
    # Drained: a request is admitted again.
    assert (await client.get("/work")).status == 200

    # Soon after a refusal, a crowd beyond the limit is the refused coming
    # back: no burst allowance. Later it is a burst again.
    release.clear()
    handled = 0
    again = await fill(floor)
    await assert_overloaded(await client.get("/work"))
    assert handled == floor
    release.set()
    assert {(await t).status for t in again} == {200}
    release.clear()
    clock.now += SHED_MEMORY_S
    later = await fill(floor + 5)
    release.set()
    assert {(await t).status for t in later} == {200}


async def held_app(aiohttp_client, service: str):
    """An app whose `/work` waits for `release`, admitting at most 4 at once,
    on a clock the test moves: (clock, admission, release, client)."""
    clock = Clock()
    admission = Admission(service, 4, 0.01, clock=clock)
    app = create_base_app(Settings(service=service), admission)
    release = asyncio.Event()

    async def work(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    app.router.add_get("/work", work)
    return clock, admission, release, await aiohttp_client(app)


async def test_retry_after_grows_with_the_refusals_and_comes_back(aiohttp_client):
    """Refused clients come back when Retry-After says: while refusals
    outnumber half the completions it doubles (once per Retry-After), and it
    halves back once they are few."""
    clock, admission, release, client = await held_app(aiohttp_client, "retry-test")

    async def crowd(refusals: int) -> list[str]:
        """The ceiling in flight, `refusals` more refused; then all finish."""
        release.clear()
        held = [asyncio.create_task(client.get("/work")) for _ in range(4)]
        await eventually(lambda: admission.in_flight == 4)
        refused = [await client.get("/work") for _ in range(refusals)]
        assert {r.status for r in refused} <= {503}
        release.set()
        assert {(await t).status for t in held} == {200}
        return [r.headers["Retry-After"] for r in refused]

    assert set(await crowd(10)) == {"1"}
    # A second later (one Retry-After), the refusals had outnumbered the
    # completions: the next completion doubles it.
    clock.now += 1.0
    assert set(await crowd(10)) == {"1"}
    assert admission.retry_after_s == 2
    assert set(await crowd(1)) == {"2"}
    # Only completions from now on: it halves back, not before two seconds.
    for _ in range(40):
        clock.now += 0.25
        assert (await client.get("/work")).status == 200
        if admission.retry_after_s == 1:
            break
    assert admission.retry_after_s == 1
    assert set(await crowd(1)) == {"1"}


async def test_retry_after_falls_back_once_nobody_is_refused(aiohttp_client):
    """A pause (the crowd gone, or no traffic at all) ends a long Retry-After
    at the first completion after it, whatever the averages of before say."""
    clock, admission, release, client = await held_app(aiohttp_client, "retry-idle")
    for _ in range(3):  # 1 -> 2 -> 4 s: refusals far above the completions
        release.clear()
        held = [asyncio.create_task(client.get("/work")) for _ in range(4)]
        await eventually(lambda: admission.in_flight == 4)
        for _ in range(20):
            assert (await client.get("/work")).status == 503
        clock.now += admission.retry_after_s
        release.set()
        await asyncio.gather(*held)
    assert admission.retry_after_s == 8
    # Quiet for less than twice Retry-After: unchanged.
    clock.now += 8
    assert (await client.get("/work")).status == 200
    assert admission.retry_after_s == 8
    # Twice Retry-After and more without a refusal: 1 s again.
    clock.now += 10
    assert (await client.get("/work")).status == 200
    assert admission.retry_after_s == 1
