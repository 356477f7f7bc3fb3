"""Dependencies down or hung: a 503/504 problem, never a 500; the circuit
breaker opens, fails fast, and closes again once a probe succeeds."""

from __future__ import annotations

import socket
from dataclasses import replace

import pytest

from common import metrics
from gateway.upstream import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from tests.helpers.gateway import PASSWORD, bearer, ops_headers, sign_up_and_login

TRIP = "trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8"
DRIVER_BODY = {
    "user_name": "wheels",
    "password": PASSWORD,
    "first_name": "Dee",
    "last_name": "River",
    "email": "dee@example.com",
    "car": {"make": "Toyota", "model": "Prius", "color": "white", "plate": "7ABC123", "seats": 4},
    "product": "standard",
}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_consecutive_failures_and_probes_once():
    clock = Clock()
    breaker = CircuitBreaker("test-upstream", threshold=3, cooldown_s=5, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == CLOSED
    breaker.allow()
    breaker.failure()
    assert breaker.state == OPEN
    assert metrics.CIRCUIT_STATE.labels("test-upstream")._value.get() == OPEN
    assert not breaker.allow()
    assert breaker.retry_after() == pytest.approx(5)
    clock.now += 5
    assert breaker.allow()  # the probe
    assert breaker.state == HALF_OPEN
    assert not breaker.allow()  # one probe at a time
    breaker.failure()
    assert breaker.state == OPEN
    clock.now += 5
    assert breaker.allow()
    breaker.success()
    assert breaker.state == CLOSED and breaker.allow()


def test_a_success_resets_the_count_of_failures():
    breaker = CircuitBreaker("test-reset", threshold=2, cooldown_s=1, clock=Clock())
    breaker.failure()
    breaker.success()
    breaker.failure()
    assert breaker.state == CLOSED


async def test_a_dead_upstream_is_503_with_retry_after_never_500(client):
    session = await sign_up_and_login(client, "stranded")
    h = bearer(session["token"])
    for method, path, body in [
        ("GET", f"/v1/trips/{TRIP}", None),
        ("GET", "/v1/trips", None),
        ("POST", "/v1/trips", {"pickup": {"lat": 37.77, "lon": -122.42},
                               "dropoff": {"lat": 37.79, "lon": -122.40}, "product": "standard"}),
        ("POST", "/v1/estimates", {"pickup": {"lat": 37.77, "lon": -122.42},
                                   "dropoff": {"lat": 37.79, "lon": -122.40}}),
        ("GET", "/v1/drivers/nearby?lat=37.77&lon=-122.42", None),
        ("POST", f"/v1/trips/{TRIP}/cancel", None),
        ("GET", f"/v1/trips/{TRIP}/timeline", None),
        ("GET", f"/v1/trips/{TRIP}/events", None),
    ]:
        resp = await client.request(method, path, json=body, headers=h)
        assert resp.status == 503, (path, await resp.text())
        assert resp.content_type == "application/problem+json"
        assert int(resp.headers["Retry-After"]) >= 1


async def test_the_circuit_opens_and_fails_fast(client):
    session = await sign_up_and_login(client, "breaker")
    h = bearer(session["token"])
    for _ in range(3):
        await client.get("/v1/trips", headers=h)
    resp = await client.get("/v1/trips", headers=h)
    assert resp.status == 503
    assert "circuit open" in (await resp.json())["detail"]
    text = await (await client.get("/metrics", headers=await ops_headers(client))).text()
    assert 'circuit_breaker_state{upstream="trip_service"} 2.0' in text
    assert 'upstream_errors_total{kind="circuit_open",upstream="trip_service"}' in text


async def test_readyz_names_each_dependency_that_is_down_to_the_ops_role_only(client):
    anonymous = await client.get("/readyz")
    assert anonymous.status == 503 and int(anonymous.headers["Retry-After"]) >= 1
    assert "checks" not in await anonymous.json()
    resp = await client.get("/readyz", headers=await ops_headers(client))
    assert resp.status == 503
    assert int(resp.headers["Retry-After"]) >= 1
    checks = (await resp.json())["checks"]
    assert checks["redis"] == "ok"
    assert checks["trip_service"].startswith("down")
    assert checks["driver_service"].startswith("down")
    assert (await client.get("/healthz")).status == 200


async def test_a_failed_driver_sign_up_leaves_no_account(client, redis):
    resp = await client.post("/v1/drivers", json=DRIVER_BODY)
    assert resp.status == 503
    assert await redis.get("gw:account:{wheels}") is None
    assert [k async for k in redis.scan_iter("gw:subject:drv_*")] == []
    login = await client.post("/v1/sessions", json={"user_name": "wheels", "password": PASSWORD})
    assert login.status == 401


@pytest.fixture
def hung_port():
    """A port that accepts connections and never answers: a hung process."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


async def test_an_upstream_that_does_not_answer_is_504(make_client, gw_settings, hung_port):
    settings = replace(
        gw_settings,
        trip_service_url=f"http://127.0.0.1:{hung_port}",
        upstream_timeout_s=0.2,
        upstream_retries=0,
    )
    client = await make_client(settings)
    session = await sign_up_and_login(client, "waiting")
    resp = await client.get(f"/v1/trips/{TRIP}", headers=bearer(session["token"]))
    assert resp.status == 504
    assert resp.content_type == "application/problem+json"
    text = await (await client.get("/metrics", headers=await ops_headers(client))).text()
    assert 'upstream_errors_total{kind="timeout",upstream="trip_service"}' in text
