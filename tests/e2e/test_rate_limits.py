"""429 with Retry-After, end to end: a second gateway process with tight
limits, on the same services and Redis as the module's system."""

from __future__ import annotations

import asyncio

import pytest

from deploy.processes import ServiceProcess
from tests.client import PASSWORD, ApiClient, rider_body
from tests.helpers.e2e import unique


@pytest.fixture(scope="module")
def strict_gateway(system, tmp_path_factory):
    s = system.system
    env = {
        **s.service_env("gateway"),
        "RATE_LIMIT_PER_TOKEN": "5",
        "LOGIN_FAILURES_LIMIT": "2",
    }
    log = tmp_path_factory.mktemp("strict") / "gateway.log"
    proc = ServiceProcess("gateway", env, log_path=log).start()
    yield proc
    proc.stop()


@pytest.fixture
def strict(http, strict_gateway):
    return ApiClient(http, strict_gateway.url)


async def test_a_session_is_limited_to_its_rate_with_a_burst(strict):
    name = unique("fast")
    assert (await strict.post("/v1/riders", rider_body(name))).status == 201
    await strict.login(name)
    replies = await asyncio.gather(*(strict.get("/v1/me") for _ in range(30)))
    statuses = [r.status for r in replies]
    assert statuses.count(200) >= 10  # the burst: twice the rate
    assert statuses.count(429) >= 10
    limited = next(r for r in replies if r.status == 429)
    assert limited.headers["Content-Type"].startswith("application/problem+json")
    assert int(limited.headers["Retry-After"]) >= 1


async def test_failed_logins_lock_a_user_name_until_the_window_ends(strict):
    name = unique("locked")
    assert (await strict.post("/v1/riders", rider_body(name))).status == 201
    for _ in range(2):
        assert (await strict.post("/v1/sessions", {"user_name": name, "password": "guess-1234"})).status == 401
    for password in ("guess-1234", PASSWORD):
        r = await strict.post("/v1/sessions", {"user_name": name, "password": password})
        assert r.status == 429, r
        assert 1 <= int(r.headers["Retry-After"]) <= 900


async def test_logins_and_sign_ups_that_succeed_are_never_limited(strict):
    names = [unique("crowd") for _ in range(15)]
    signups = await asyncio.gather(*(strict.post("/v1/riders", rider_body(n)) for n in names))
    assert {r.status for r in signups} == {201}
    statuses = await asyncio.gather(*(log_in(strict, n) for n in names * 2))
    assert all(s[-1] == 201 for s in statuses) and not any(429 in s for s in statuses), statuses


async def log_in(api: ApiClient, name: str) -> list[int]:
    """Every status of one login, retried as a client would on 503 (a
    session its replicas did not confirm within WAIT's timeout, on a loaded
    machine): never a limit."""
    replies = await api.call_retried("POST", "/v1/sessions",
                                     {"user_name": name, "password": PASSWORD},
                                     retry_on=lambda r: r.status == 503)
    return [r.status for r in replies]
