"""Authorization and hostile input beyond tests/e2e (OWASP API Security Top
10: API1 object-level authorization, API3 property-level authorization and
mass assignment, API4 resource limits, API5 function-level authorization),
HTTP request smuggling over raw sockets, and path traversal in /static.

tests/e2e/test_authorization.py already covers 401 on every route, 403 for
every wrong role and 404 for a stranger's trip on every trip route; this
module covers what changes hands (a trip given back by its driver, an offer
that moved on), what is keyed by the caller (idempotency keys, lists), fields
the server owns, limits, and what happens below HTTP.
"""

from __future__ import annotations

import socket
import time

import aiohttp
import pytest

from tests.client import OPS_PASSWORD, OPS_USER, ApiClient, driver_body, rider_body
from tests.proofs.support import CENTER, around, proof_client, record_figures, start_proof_system

_count = {"requests": 0}


@pytest.fixture(scope="module")
def authz_system(tmp_path_factory):
    s = start_proof_system(tmp_path_factory.mktemp("authz"))
    yield s
    s.stop()


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


_spots = iter(range(10_000))


def spot() -> dict:
    """A fresh place for a test; its drivers stand right at the pickup, so the
    offers go to them (the nearest) and not to another test's drivers."""
    i = next(_spots)
    return around(CENTER, -0.06 + 0.012 * (i % 10), -0.09 + 0.015 * (i // 10 % 10))


class Actors:
    def __init__(self, http, base: str) -> None:
        self.http = http
        self.base = base

    async def rider(self) -> ApiClient:
        api = proof_client(self.http, self.base)
        name = f"ar{time.monotonic_ns() % 10**12}"
        a = await api.post("/v1/riders", rider_body(name))
        assert a.status == 201, a
        assert (await api.login(name)).status == 201
        api.profile = a.body
        return api

    async def driver(self, at: dict | None = None) -> ApiClient:
        api = proof_client(self.http, self.base)
        name = f"ad{time.monotonic_ns() % 10**12}"
        a = await api.post("/v1/drivers", driver_body(name))
        assert a.status == 201, a
        assert (await api.login(name)).status == 201
        if at is not None:
            assert (await api.call("PUT", "/v1/driver/location", at)).status == 204
            assert (await api.post("/v1/driver/status", {"status": "online"})).status == 200
        return api

    async def ops(self) -> ApiClient:
        api = proof_client(self.http, self.base)
        assert (await api.login(OPS_USER, OPS_PASSWORD)).status == 201
        return api


@pytest.fixture
def actors(http, authz_system) -> Actors:
    return Actors(http, authz_system.url)


async def offer_for(driver: ApiClient, trip_id: str) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        a = await driver.get("/v1/driver/offers/next", params={"wait": "5"}, timeout=15)
        assert a.status in (200, 204), a
        if a.status == 200 and a.body["trip_id"] == trip_id:
            return a.body
    raise AssertionError(f"no offer of {trip_id}")


async def trip_at(rider: ApiClient, place: dict, **extra) -> dict:
    body = {"pickup": place, "dropoff": around(place, 0.004), "product": "standard", **extra}
    a = await rider.post("/v1/trips", body)
    assert a.status == 201, a
    return a.body


TRIP_ROUTES = [
    ("GET", "/v1/trips/{id}", None),
    ("GET", "/v1/trips/{id}/timeline", None),
    ("GET", "/v1/trips/{id}/events", None),
    ("POST", "/v1/trips/{id}/arrive", None),
    ("POST", "/v1/trips/{id}/start", None),
    ("POST", "/v1/trips/{id}/complete", None),
    ("POST", "/v1/trips/{id}/cancel", None),
]


# --- API1: object-level authorization ----------------------------------------
async def test_a_driver_who_gave_a_trip_back_loses_it_on_every_route(actors):
    place = spot()
    first = await actors.driver(around(place, 0.0003))
    rider = await actors.rider()
    trip = await trip_at(rider, place)
    await offer_for(first, trip["id"])
    assert (await first.post(f"/v1/driver/offers/{trip['id']}/accept")).status == 200
    assert (await first.post(f"/v1/trips/{trip['id']}/cancel", {"reason": "flat tyre"})).status \
        == 200
    second = await actors.driver(around(place, 0.0006))
    await offer_for(second, trip["id"])
    assert (await second.post(f"/v1/driver/offers/{trip['id']}/accept")).status == 200
    for method, path, body in TRIP_ROUTES:
        got = await first.call(method, path.replace("{id}", trip["id"]), body,
                               headers={"Accept": "text/event-stream"})
        assert got.status == 404, (method, path, got)
    # Nor can it take the trip back through the offer routes.
    for action in ("accept", "decline"):
        got = await first.post(f"/v1/driver/offers/{trip['id']}/{action}")
        assert got.status == 409, (action, got)
    assert (await first.get("/v1/driver/trip")).status == 204
    got = await rider.get(f"/v1/trips/{trip['id']}")
    assert got.body["driver"]["id"] == second.subject_id
    await rider.post(f"/v1/trips/{trip['id']}/cancel")


async def test_an_offer_that_moved_on_gives_no_access(actors):
    place = spot()
    d = await actors.driver(around(place, 0.0003))
    rider = await actors.rider()
    trip = await trip_at(rider, place)
    await offer_for(d, trip["id"])
    assert (await d.post(f"/v1/driver/offers/{trip['id']}/decline")).status == 204
    for method, path, body in TRIP_ROUTES:
        got = await d.call(method, path.replace("{id}", trip["id"]), body)
        assert got.status == 404, (method, path, got)
    assert (await d.post(f"/v1/driver/offers/{trip['id']}/accept")).status == 409
    await rider.post(f"/v1/trips/{trip['id']}/cancel")


async def test_idempotency_keys_belong_to_their_rider(actors):
    """The same key from another rider is another request: it never replays
    (nor reveals) the first rider's trip."""
    a, b = await actors.rider(), await actors.rider()
    place = spot()
    body = {"pickup": place, "dropoff": around(place, 0.004), "product": "standard"}
    first = await a.post("/v1/trips", body, headers={"Idempotency-Key": "shared-key-1"})
    second = await b.post("/v1/trips", body, headers={"Idempotency-Key": "shared-key-1"})
    assert first.status == 201 and second.status == 201, (first, second)
    assert second.body["id"] != first.body["id"]
    assert second.body["rider_id"] == b.subject_id
    assert "Idempotent-Replayed" not in second.headers
    for r, t in ((a, first.body), (b, second.body)):
        await r.post(f"/v1/trips/{t['id']}/cancel")


async def test_lists_hold_only_the_callers_trips(actors):
    a, b = await actors.rider(), await actors.rider()
    mine = await trip_at(a, spot())
    theirs = await trip_at(b, spot())
    for r, own, other in ((a, mine, theirs), (b, theirs, mine)):
        got = await r.get("/v1/trips", params={"limit": "100"})
        ids = {t["id"] for t in got.body["items"]}
        assert own["id"] in ids and other["id"] not in ids
        assert all(t["rider_id"] == r.subject_id for t in got.body["items"])
    d = await actors.driver()
    got = await d.get("/v1/trips", params={"limit": "100"})
    assert got.status == 200 and got.body["items"] == []
    await a.post(f"/v1/trips/{mine['id']}/cancel")
    await b.post(f"/v1/trips/{theirs['id']}/cancel")


async def test_ids_that_name_nothing_of_the_caller_are_404(actors):
    r = await actors.rider()
    trip = await trip_at(r, spot())
    tail = trip["id"].split("_", 2)[2]
    for bad in (
        f"trp_xx_{tail}",                  # another (unknown) region
        f"rdr_sf_{tail}",                  # another kind of id
        trip["id"].lower(),
        trip["id"] + "0",
        "trp_sf_" + "0" * 26,
        "..%2f..%2finternal",
        "%00",
        "trp_sf_" + "Z" * 5000,
    ):
        got = await r.get(f"/v1/trips/{bad}")
        assert got.status in (404, 414), (bad, got)
        if got.status == 404:
            assert got.headers["Content-Type"].startswith("application/problem+json")
    await r.post(f"/v1/trips/{trip['id']}/cancel")


async def test_internal_routes_are_not_reachable_through_the_gateway(actors):
    ops = await actors.ops()
    r = await actors.rider()
    trip = await trip_at(r, spot())
    for path in (f"/internal/trips/{trip['id']}", "/internal/ops/overview",
                 f"/internal/riders/{r.subject_id}/trips", "/v1/../internal/ops/overview"):
        for caller in (ops, r):
            got = await caller.get(path)
            assert got.status == 404, (path, got)
    await r.post(f"/v1/trips/{trip['id']}/cancel")


# --- API3: property-level authorization, mass assignment ----------------------
SERVER_OWNED_TRIP = {
    "id": "trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8", "status": "completed", "rider_id": "rdr_sf_x",
    "driver_id": "drv_sf_x", "driver": {"id": "drv_sf_x"}, "fare": {"amount": "0.01",
    "currency": "USD"}, "fare_estimate": {"amount": "0.01", "currency": "USD"}, "surge": 0.1,
    "queue_position": 1, "requested_at": "2000-01-01T00:00:00.000Z", "role": "ops",
    "refused": ["drv_sf_y"], "offer": {"driver_id": "drv_sf_x"}, "expires_ms": 1,
    "rating": {"stars": 5},
}


async def test_trip_fields_the_server_owns_cannot_be_set(actors):
    r = await actors.rider()
    trip = await trip_at(r, spot(), **SERVER_OWNED_TRIP)
    assert trip["status"] == "requested"
    assert trip["rider_id"] == r.subject_id
    assert trip["id"] != SERVER_OWNED_TRIP["id"] and trip["id"].startswith("trp_sf_")
    for name in ("driver_id", "driver", "fare", "rating", "refused", "offer", "expires_ms", "role"):
        assert name not in trip, name
    assert trip["fare_estimate"] != SERVER_OWNED_TRIP["fare_estimate"]
    assert trip["requested_at"] != SERVER_OWNED_TRIP["requested_at"]
    assert trip["surge"] >= 1
    got = await r.get(f"/v1/trips/{trip['id']}")
    assert got.body["status"] == "requested" and "fare" not in got.body
    # A cancel or a rating carries no server-owned field either.
    cancelled = await r.post(f"/v1/trips/{trip['id']}/cancel",
                             {"reason": "x", "status": "completed", "cancelled_by": "driver",
                              "rider_id": "rdr_sf_someone", "fare": {"amount": "0"}})
    assert cancelled.status == 200
    assert cancelled.body["status"] == "cancelled" and cancelled.body["cancelled_by"] == "rider"
    assert "fare" not in cancelled.body


async def test_account_fields_the_server_owns_cannot_be_set(actors, http, authz_system):
    api = proof_client(http, authz_system.url)
    name = f"mass{time.monotonic_ns() % 10**12}"
    a = await api.post("/v1/riders", {**rider_body(name), "role": "ops",
                                      "id": "ops_ops", "subject_id": "ops_ops",
                                      "created_at": "2000-01-01T00:00:00.000Z",
                                      "hash": "x", "state": "active"})
    assert a.status == 201, a
    assert a.body["role"] == "rider" and a.body["id"].startswith("rdr_sf_")
    assert a.body["created_at"] != "2000-01-01T00:00:00.000Z"
    assert "password" not in a.body and "hash" not in a.body
    session = await api.post("/v1/sessions", {"user_name": name,
                                              "password": rider_body(name)["password"],
                                              "role": "ops"})
    assert session.status == 201 and session.body["role"] == "rider"
    api.token = session.body["token"]
    assert (await api.get("/v1/ops/overview")).status == 403
    me = await api.get("/v1/me")
    assert me.body["role"] == "rider" and "password" not in me.body and "hash" not in me.body

    dname = f"massd{time.monotonic_ns() % 10**12}"
    d = await api.post("/v1/drivers", {**driver_body(dname), "status": "online", "rating": 5,
                                       "available": True, "role": "ops", "id": "drv_sf_x",
                                       "active_trip_id": "trp_sf_x"}, token="")
    assert d.status == 201, d
    assert d.body["status"] == "offline" and d.body["rating"] is None
    assert d.body["role"] == "driver" and d.body["id"] != "drv_sf_x"
    assert not d.body.get("available") and not d.body.get("active_trip_id")


async def test_driver_fields_the_server_owns_cannot_be_set(actors):
    d = await actors.driver()
    place = spot()
    loc = await d.call("PUT", "/v1/driver/location",
                       {**place, "status": "online", "available": True, "trip_id": "trp_sf_x",
                        "rating": 5, "product": "premium"})
    assert loc.status == 204
    on = await d.post("/v1/driver/status", {"status": "online", "rating": 5, "product": "premium",
                                            "trip_id": "trp_sf_x", "offer": {"trip_id": "x"}})
    assert on.status == 200
    assert on.body["product"] == "standard" and on.body["rating"] is None
    assert not on.body.get("active_trip_id")
    assert (await d.get("/v1/driver/trip")).status == 204
    assert (await d.post("/v1/driver/status", {"status": "offline"})).status == 200


async def test_answers_carry_no_internal_fields(actors):
    place = spot()
    d = await actors.driver(around(place, 0.0003))
    r = await actors.rider()
    trip = await trip_at(r, place)
    offer = await offer_for(d, trip["id"])
    accepted = await d.post(f"/v1/driver/offers/{trip['id']}/accept")
    internal = {"refused", "offer", "requested_ms", "expires_ms", "assigned_ms", "cell",
                "region", "hash", "password", "rating_sum", "rating_count", "supply_cell"}
    for body in (trip, offer, accepted.body, (await r.get(f"/v1/trips/{trip['id']}")).body,
                 (await d.get("/v1/driver/trip")).body, (await d.get("/v1/me")).body):
        # A profile names its home region; nothing else internal leaves the gateway.
        leaked = (internal & set(body)) - {"region"}
        assert not leaked, (leaked, body)
    # The rider learns the driver's first name, car and place, not their last name.
    driver_view = (await r.get(f"/v1/trips/{trip['id']}")).body["driver"]
    assert "last_name" not in driver_view and "email" not in driver_view
    await r.post(f"/v1/trips/{trip['id']}/cancel")


# --- API4: resource limits: oversized bodies, huge strings and pages -------------
async def test_bodies_over_64_kib_are_413_on_every_body_route(actors, http, authz_system):
    r = await actors.rider()
    d = await actors.driver()
    big = b'{"pad": "' + b"x" * (65 * 1024) + b'"}'
    for caller, method, path in (
        (None, "POST", "/v1/riders"), (None, "POST", "/v1/drivers"), (None, "POST", "/v1/sessions"),
        (r, "POST", "/v1/trips"), (r, "POST", "/v1/estimates"),
        (r, "POST", "/v1/trips/trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8/rating"),
        (d, "PUT", "/v1/driver/location"), (d, "POST", "/v1/driver/status"),
    ):
        api = caller or proof_client(http, authz_system.url)
        got = await api.call(method, path, data=big, headers={"Content-Type": "application/json"})
        assert got.status == 413, (path, got)
        assert got.headers["Content-Type"].startswith("application/problem+json")

    # Without a Content-Length (chunked), the limit holds all the same.
    async def chunks():
        for _ in range(20):
            yield b"x" * 8192

    got = await r.call("POST", "/v1/estimates", data=chunks(),
                       headers={"Content-Type": "application/json"})
    assert got.status == 413, got


HUGE = "x" * 70_000


async def test_huge_strings_and_page_sizes_are_422(actors, http, authz_system):
    r = await actors.rider()
    d = await actors.driver()
    anon = proof_client(http, authz_system.url)
    place = spot()
    cases = [
        (anon, "POST", "/v1/riders", {**rider_body("x" * 2000)}, None),
        (anon, "POST", "/v1/riders", {**rider_body("okname1"), "bio": "b" * 501}, None),
        (anon, "POST", "/v1/riders", {**rider_body("okname2"), "first_name": "f" * 65}, None),
        (anon, "POST", "/v1/riders", {**rider_body("okname3"), "password": "p" * 257}, None),
        (anon, "POST", "/v1/riders", {**rider_body("okname4"), "age": 10**30}, None),
        (anon, "POST", "/v1/sessions", {"user_name": "u" * 65, "password": "whatever1"}, None),
        (r, "POST", "/v1/trips", {"pickup": place, "dropoff": place, "product": "x" * 1000}, None),
        (r, "POST", "/v1/trips", {"pickup": {"lat": 1e308, "lon": 1e308}, "dropoff": place,
                                  "product": "standard"}, None),
        (r, "POST", "/v1/trips/trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8/cancel", {"reason": "r" * 501},
         None),
        (r, "POST", "/v1/trips/trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8/rating",
         {"stars": 5, "comment": "c" * 501}, None),
        (r, "GET", "/v1/trips", None, {"limit": "1000"}),
        (r, "GET", "/v1/trips", None, {"limit": "0"}),
        (r, "GET", "/v1/trips", None, {"limit": "-5"}),
        (r, "GET", "/v1/trips", None, {"limit": str(10**40)}),
        (r, "GET", "/v1/trips", None, {"cursor": "c" * 600}),
        (r, "GET", "/v1/drivers/nearby", None, {"lat": "37.77", "lon": "-122.41",
                                                "radius_m": "1e12"}),
        (d, "GET", "/v1/driver/offers/next", None, {"wait": "21"}),
        (d, "GET", "/v1/driver/offers/next", None, {"wait": "1e9"}),
        (d, "PUT", "/v1/driver/location", {**place, "speed_mps": 1e9}, None),
    ]
    for caller, method, path, body, params in cases:
        got = await caller.call(method, path, body, params=params)
        assert got.status == 422, (path, body and str(body)[:80], params, got)
        assert got.body["errors"], got
    got = await r.post("/v1/trips", {"pickup": place, "dropoff": around(place, 0.004),
                                     "product": "standard"},
                       headers={"Idempotency-Key": "k" * 256})
    assert got.status == 422 and got.body["errors"][0]["field"] == "Idempotency-Key", got


async def test_pathological_json_is_a_client_error(actors):
    r = await actors.rider()
    deep = b"[" * 100_000 + b"]" * 100_000
    for raw in (deep[: 60 * 1024], b'{"stars": NaN}', b'{"stars": Infinity}', b"\xff\xfe",
                b'{"a": "\\ud800"}', b"{" + b'"a":1,' * 9000 + b'"a":2}', b"1" * 60000):
        got = await r.call("POST", "/v1/trips/trp_sf_01JDQ3V8M7X1Y2Z3A4B5C6D7E8/rating",
                           data=raw, headers={"Content-Type": "application/json"})
        assert got.status in (400, 422), (raw[:40], got)


# --- below HTTP: smuggling and header injection over raw sockets ------------------
def raw_exchange(port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes, read until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        chunks = []
        s.settimeout(timeout)
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        except (socket.timeout, ConnectionResetError):
            pass
    return b"".join(chunks)


def statuses(raw: bytes) -> list[int]:
    return [int(line.split()[1]) for line in raw.split(b"\r\n")
            if line.startswith(b"HTTP/1.") and len(line.split()) >= 2]


SMUGGLED = b"GET /v1/ops/overview HTTP/1.1\r\nHost: x\r\n\r\n"

SMUGGLING = {
    "content-length and transfer-encoding": (
        b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n" + SMUGGLED
    ),
    "transfer-encoding and content-length": (
        b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Length: 50\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "two content-lengths": (
        b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nContent-Length: 48\r\n\r\n{}" + SMUGGLED
    ),
    "a list of content-lengths": (
        b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 48\r\n\r\n{}" + SMUGGLED
    ),
    "an obfuscated transfer-encoding": (
        b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "chunked, then identity": (
        b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n"
        b"\r\n0\r\n\r\n" + SMUGGLED
    ),
    "a space before the colon": (
        b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length : 2\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "a bare LF inside a header value": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\nContent-Length: 48\r\n\r\n"
        + SMUGGLED
    ),
    "a bare CR inside a header value": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\rInjected: yes\r\n\r\n"
    ),
    "an obsolete folded header": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: abc\r\n Injected: yes\r\n\r\n"
    ),
    "a NUL in a header value": (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Request-ID: a\x00b\r\n\r\n"
    ),
    "a bad chunk size": (
        b"POST /v1/sessions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\n{}\r\n0\r\n\r\n"
    ),
}


@pytest.mark.parametrize("name", list(SMUGGLING))
def test_smuggling_attempts_are_refused_and_nothing_rides_along(authz_system, name):
    raw = raw_exchange(authz_system.system.gateway.port, SMUGGLING[name])
    got = statuses(raw)
    assert got, f"no answer at all: {raw[:200]!r}"
    assert got[0] == 400, (name, raw[:300])
    # The request hidden in the body is never answered as a second request.
    assert len(got) == 1, (name, got, raw[:600])
    assert b"Injected" not in raw.split(b"\r\n\r\n")[0]
    _count["requests"] += 1


def test_a_request_id_cannot_inject_response_headers(authz_system):
    port = authz_system.system.gateway.port
    for value in (b"abc%0d%0aInjected:%20yes", b"abc\\r\\nInjected: yes", b"<script>",
                  b"a" * 500):
        raw = raw_exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                           b"X-Request-ID: " + value + b"\r\n\r\n")
        head = raw.split(b"\r\n\r\n")[0]
        assert statuses(raw) == [200], raw[:300]
        assert b"\r\ninjected:" not in head.lower()
        rid = [line for line in head.split(b"\r\n") if line.lower().startswith(b"x-request-id:")]
        assert len(rid) == 1 and value not in rid[0], rid


def test_a_clean_request_still_works_on_the_same_server(authz_system):
    raw = raw_exchange(authz_system.system.gateway.port,
                       b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses(raw) == [200]


# --- /static: path traversal ------------------------------------------------------
TRAVERSALS = [
    b"/static/../app.py",
    b"/static/../../gateway/app.py",
    b"/static/%2e%2e/app.py",
    b"/static/%2e%2e%2fapp.py",
    b"/static/..%2fapp.py",
    b"/static/..%252fapp.py",
    b"/static/....//app.py",
    b"/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    b"/static//etc/passwd",
    b"/static/%2fetc%2fpasswd",
    b"/static/..\\app.py",
    b"/static/index.html%00.png",
    b"/static/./../../../../../../proc/self/environ",
    b"/static/%c0%ae%c0%ae/app.py",
    b"/static/",
    b"/static/.",
]


@pytest.mark.parametrize("path", TRAVERSALS, ids=[p.decode() for p in TRAVERSALS])
def test_static_serves_nothing_outside_its_folder(authz_system, path):
    raw = raw_exchange(authz_system.system.gateway.port,
                       b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = statuses(raw)
    assert got and got[0] in (400, 404), (path, raw[:300])
    body = raw.partition(b"\r\n\r\n")[2]
    for secret in (b"import ", b"root:", b"REDIS_URL", b"OPS_PASSWORD", b"def create_app"):
        assert secret not in body, (path, secret)


def test_static_serves_its_own_files(authz_system):
    raw = raw_exchange(authz_system.system.gateway.port,
                       b"GET /static/dashboard.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses(raw) == [200]


def test_record(authz_system):
    record_figures("hostile_input", {"smuggling_attempts_refused": _count["requests"],
                                     "traversal_paths_refused": len(TRAVERSALS)})


async def test_the_gateway_is_whole_after_all_this(actors):
    r = await actors.rider()
    trip = await trip_at(r, spot())
    assert (await r.get(f"/v1/trips/{trip['id']}")).status == 200
    assert (await r.post(f"/v1/trips/{trip['id']}/cancel")).status == 200
