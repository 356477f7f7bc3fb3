"""No single account can degrade the service, and nothing trusts the network:
each bound proved against the real processes on a real Redis, called over
HTTP as a client would (docs/security.md lists the bounds).

The two figures (another driver's latency during a long-poll flood, a
login's during a sign-up flood) are printed; run with -s to see them.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time

import aiohttp
import pytest

from common.embedded import EmbeddedRedis, free_port
from tests.client import PASSWORD, ApiClient, driver_body, rider_body
from tests.harness import System
from tests.waiting import eventually

LOGIN_LIMIT = 3
SIGNUPS_PER_ADDR = 5
SSE_PER_SESSION = 3
ABUSE_ENV = {
    "OFFER_TIMEOUT_S": "5",
    "TRIP_EXPIRY_S": "60",
    "SWEEP_INTERVAL_S": "0.05",
    "SSE_PING_S": "1",
    "STREAM_BLOCK_MS": "200",
    # The flood comes inside the session's own rate limit (the default: 50/s,
    # bursts of 100), as in the review.
    "RATE_LIMIT_PER_TOKEN": "50",
    "LOGIN_FAILURES_LIMIT": str(LOGIN_LIMIT),
    "SIGNUPS_PER_ADDR": str(SIGNUPS_PER_ADDR),
    "SSE_PER_SESSION": str(SSE_PER_SESSION),
    # The tests stand in for a proxy on this host that names the client in
    # X-Forwarded-For.
    "TRUSTED_PROXIES": "127.0.0.1",
}
PLACE = {"lat": 37.775, "lon": -122.42}


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    base = tmp_path_factory.mktemp("abuse")
    server = EmbeddedRedis(base / "redis", free_port()).start()
    s = System(server.url, base, env=ABUSE_ENV)
    try:
        s.start()
        yield s
    finally:
        s.stop()
        server.stop()


@pytest.fixture
async def http(system):
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        yield session


def addr() -> str:
    """A fresh made-up client address, named by the trusted proxy."""
    n = secrets.randbelow(2**24 - 2) + 1
    return f"10.{n >> 16}.{(n >> 8) & 255}.{n & 255}"


def name(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(5)}"


async def signed_up(http, system, kind: str, **over) -> ApiClient:
    c = ApiClient(http, system.url)
    user = name(kind[0])
    body = rider_body(user, **over) if kind == "rider" else driver_body(user, **over)
    r = await c.post(f"/v1/{kind}s", body, headers={"X-Forwarded-For": addr()})
    assert r.status == 201, r
    c.profile = r.body
    await c.login(user)
    return c


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


async def test_a_long_poll_flood_by_one_driver_leaves_other_drivers_unharmed(http, system):
    flooder = await signed_up(http, system, "driver")
    other = await signed_up(http, system, "driver")
    flooder.report_failures = True
    polls: list[asyncio.Task] = []
    latencies: list[float] = []
    statuses: list[int] = []
    flooding = True

    async def measure() -> None:
        while flooding:
            r = await other.get("/v1/me")
            statuses.append(r.status)
            latencies.append(r.elapsed)
            await asyncio.sleep(0.02)

    measurer = asyncio.create_task(measure())
    # 250 polls, wait=10, at 45 a second: inside the session's rate limit.
    for _ in range(250):
        polls.append(asyncio.create_task(
            flooder.get("/v1/driver/offers/next", params={"wait": "10"}, timeout=30)
        ))
        await asyncio.sleep(1 / 45)
    # The measurement goes on while the polls are open: 20 more calls.
    enough = len(latencies) + 20
    await eventually(lambda: len(latencies) >= enough, timeout=30)
    flooding = False
    await measurer
    poll_replies = await asyncio.gather(*polls)
    poll_statuses = sorted({r.status for r in poll_replies})
    figure = p99(latencies) * 1000
    print(f"\n[long-poll flood] 250 polls by one driver; another driver's GET /v1/me: "
          f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {figure:.1f} ms over "
          f"{len(latencies)} calls (target p99 < 100 ms); poll answers {poll_statuses}")
    assert set(statuses) == {200}, statuses
    # Each poll was ended by the next (204) or is the last one, answered 204
    # at the end of its wait; none failed, none was a 5xx.
    assert set(poll_statuses) <= {204, 429}, poll_statuses
    assert sum(r.status == 204 for r in poll_replies) >= 200
    assert figure < 100, f"p99 {figure:.1f} ms"
    # The driver side still works for everyone: the other driver's own poll.
    r = await other.get("/v1/driver/offers/next", params={"wait": "0"})
    assert r.status == 204, r


async def test_a_new_long_poll_ends_the_previous_one_and_an_offer_is_not_lost(http, system):
    d = await signed_up(http, system, "driver")
    first = asyncio.create_task(d.get("/v1/driver/offers/next", params={"wait": "15"}))
    await asyncio.sleep(0.3)  # the first is open (nothing to wait for: no event exists)
    started = time.monotonic()
    second = asyncio.create_task(d.get("/v1/driver/offers/next", params={"wait": "1"}))
    r1 = await first
    assert r1.status == 204 and time.monotonic() - started < 5, r1
    assert (await second).status == 204


async def test_a_sign_up_flood_does_not_slow_logins(http, system):
    user = await signed_up(http, system, "rider")

    async def login_ms() -> float:
        started = time.monotonic()
        r = await http.post(f"{system.url}/v1/sessions",
                            json={"user_name": user.user_name, "password": PASSWORD},
                            headers={"X-Forwarded-For": "198.51.100.10"})
        assert r.status == 201, await r.text()
        await r.read()
        return (time.monotonic() - started) * 1000

    quiet = statistics.median([await login_ms() for _ in range(7)])
    taken = rider_body(user.user_name)

    async def signup(body: dict) -> int:
        async with http.post(f"{system.url}/v1/riders", json=body,
                             headers={"X-Forwarded-For": addr()}) as r:
            await r.read()
            return r.status

    # Waves of 40 concurrent sign-ups of the taken name from many addresses,
    # a wave every 0.2 s (200 a second: four times what 40 concurrent ones
    # made when each cost a hash).
    stop = asyncio.Event()
    codes: list[int] = []
    waves: set[asyncio.Task] = set()

    async def wave() -> None:
        codes.extend(await asyncio.gather(*(signup(taken) for _ in range(40))))

    async def flood() -> None:
        while not stop.is_set():
            task = asyncio.create_task(wave())
            waves.add(task)
            task.add_done_callback(waves.discard)
            await asyncio.sleep(0.2)

    flooder = asyncio.create_task(flood())
    # The flood is on: two waves answered.
    await eventually(lambda: len(codes) >= 80, timeout=60)
    during = statistics.median([await login_ms() for _ in range(9)])
    stop.set()
    await flooder
    await asyncio.gather(*waves)
    print(f"\n[sign-up flood] a login: {quiet:.1f} ms quiet, {during:.1f} ms during waves of "
          f"40 concurrent sign-ups of a taken name (target < 2x quiet); "
          f"{len(codes)} sign-ups answered {sorted(set(codes))}")
    assert set(codes) <= {409, 429}, set(codes)
    assert during < 2 * quiet, (quiet, during)


async def test_sign_ups_per_client_address_are_bounded(http, system):
    ip = addr()
    codes = []
    for _ in range(SIGNUPS_PER_ADDR + 2):
        async with http.post(f"{system.url}/v1/riders", json=rider_body(name("s")),
                             headers={"X-Forwarded-For": ip}) as r:
            codes.append(r.status)
            if r.status == 429:
                body = await r.json()
                assert int(r.headers["Retry-After"]) >= 1
                assert body["type"] == "/problems/rate-limited" and "sign-ups" in body["detail"]
    assert codes == [201] * SIGNUPS_PER_ADDR + [429, 429], codes
    # Another address is not affected.
    async with http.post(f"{system.url}/v1/riders", json=rider_body(name("s")),
                         headers={"X-Forwarded-For": addr()}) as r:
        assert r.status == 201


async def test_live_streams_per_session_are_capped(http, system):
    rider = await signed_up(http, system, "rider")
    trip = await rider.post("/v1/trips", {"pickup": PLACE, "dropoff": {
        "lat": PLACE["lat"] + 0.004, "lon": PLACE["lon"]}, "product": "standard"})
    assert trip.status == 201, trip
    url = f"{system.url}/v1/trips/{trip.body['id']}/events"
    headers = {"Authorization": f"Bearer {rider.token}", "Accept": "text/event-stream"}
    held = []
    try:
        for _ in range(SSE_PER_SESSION):
            resp = await http.get(url, headers=headers)
            assert resp.status == 200
            held.append(resp)
        async with http.get(url, headers=headers) as over:
            assert over.status == 429
            assert int(over.headers["Retry-After"]) >= 1
            assert "live streams" in (await over.json())["detail"]
        # Another session of the same rider has its own allowance.
        other = ApiClient(http, system.url)
        await other.login(rider.user_name)
        async with http.get(url, headers={**headers, "Authorization": f"Bearer {other.token}"}) \
                as resp:
            assert resp.status == 200
        # A stream closed frees its place.
        held.pop().close()

        async def reopened() -> bool:
            resp = await http.get(url, headers=headers)
            if resp.status == 200:
                held.append(resp)
                return True
            resp.close()
            return False

        deadline = time.monotonic() + 10
        while not await reopened():
            assert time.monotonic() < deadline, "the closed stream's place never came back"
            await asyncio.sleep(0.1)
    finally:
        for resp in held:
            resp.close()


async def test_failed_logins_cannot_lock_the_owner_out(http, system):
    victim = await signed_up(http, system, "rider")
    user = victim.user_name

    async def login(password: str, ip: str) -> aiohttp.ClientResponse:
        async with http.post(f"{system.url}/v1/sessions",
                             json={"user_name": user, "password": password},
                             headers={"X-Forwarded-For": ip}) as r:
            await r.read()
            return r

    attacker = "198.51.100.66"
    for _ in range(LOGIN_LIMIT):
        assert (await login("wrong-guess-123", attacker)).status == 401
    # The attacker's address is locked for this name, even with the right password.
    locked = await login(PASSWORD, attacker)
    assert locked.status == 429 and int(locked.headers["Retry-After"]) >= 1
    # The owner, from an address that has not failed, logs in.
    assert (await login(PASSWORD, "192.0.2.44")).status == 201
    # While the name is under attack, a new address gets one guess: its
    # first wrong one locks it too.
    guesser = "192.0.2.45"
    assert (await login("wrong-guess-456", guesser)).status == 401
    assert (await login(PASSWORD, guesser)).status == 429
    # The owner's address is still open.
    assert (await login(PASSWORD, "192.0.2.44")).status == 201


async def test_a_password_change_ends_every_session(http, system):
    rider = await signed_up(http, system, "rider")
    second = ApiClient(http, system.url)
    await second.login(rider.user_name)
    weak = await rider.call("PUT", "/v1/me/password",
                            {"current_password": PASSWORD, "new_password": "password1"})
    assert weak.status == 422 and weak.body["errors"][0]["field"] == "new_password", weak
    wrong = await rider.call("PUT", "/v1/me/password",
                             {"current_password": "not-the-password",
                              "new_password": "n3w-secret-words"})
    assert wrong.status == 401, wrong
    assert (await rider.get("/v1/me")).status == 200  # nothing changed
    done = await rider.call("PUT", "/v1/me/password",
                            {"current_password": PASSWORD, "new_password": "n3w-secret-words"})
    assert done.status == 204, done
    for c in (rider, second):
        assert (await c.get("/v1/me")).status == 401
    r = await rider.post("/v1/sessions", {"user_name": rider.user_name, "password": PASSWORD})
    assert r.status == 401
    await rider.login(rider.user_name, "n3w-secret-words")
    assert (await rider.get("/v1/me")).status == 200


async def test_the_services_answer_only_the_gateway(http, system):
    for proc in (system.trips[0], system.drivers[0]):
        for path in ("/internal/trips/trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8",
                     "/internal/drivers/drv_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8",
                     "/internal/nearby?region=sf&lat=37.77&lon=-122.42&radius_m=100"):
            for headers in ({}, {"Authorization": "Bearer " + "x" * 43},
                            {"Authorization": "Bearer"}):
                async with http.get(proc.url + path, headers=headers) as r:
                    assert r.status == 401, (proc.module, path, headers)
                    assert r.content_type == "application/problem+json"
        cancel = "/internal/trips/trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8/cancel"
        async with http.post(proc.url + cancel, json={}) as r:
            assert r.status == 401
        async with http.get(proc.url + "/healthz") as r:
            assert r.status == 200


@pytest.mark.parametrize("token", ["", "too-short-a-secret"])
def test_a_service_does_not_start_without_a_usable_internal_token(system, tmp_path, token):
    from tests.harness import ServiceProcess

    env = {**system.service_env("trip_service"), "INTERNAL_TOKEN": token}
    proc = ServiceProcess("trip_service", env, log_path=tmp_path / "trip.log")
    with pytest.raises(RuntimeError, match="INTERNAL_TOKEN"):
        proc.start(timeout=30)
    proc.stop()


async def test_a_driver_cannot_tell_whether_a_trip_not_offered_to_them_exists(http, system):
    rider = await signed_up(http, system, "rider")
    trip = await rider.post("/v1/trips", {"pickup": PLACE, "dropoff": {
        "lat": PLACE["lat"] + 0.004, "lon": PLACE["lon"]}, "product": "premium"})
    assert trip.status == 201, trip
    d = await signed_up(http, system, "driver")
    missing = "trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8"
    for trip_id in (trip.body["id"], missing):
        for action in ("accept", "decline"):
            r = await d.post(f"/v1/driver/offers/{trip_id}/{action}")
            assert r.status == 404, (trip_id, action, r)
