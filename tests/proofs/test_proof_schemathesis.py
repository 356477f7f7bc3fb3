"""Hostile input from Schemathesis against the gateway's served /openapi.json.

Every operation is called with generated requests (valid ones, and invalid
ones of every kind the document allows Schemathesis to derive), as a rider, a
driver and ops, and every answer goes through all of Schemathesis' checks:
no 5xx, every status, header and body as the document says, valid requests
accepted, invalid ones rejected. The stateful tests chain operations through
the links Schemathesis finds or infers in the document (a trip created, then
read, cancelled, rated ...). The seed is fixed and the examples are bounded.

Three adjustments, all on the client side: a generated `cursor` of
`GET /v1/trips` is left out (it is opaque: only one a page gave is valid, any
other is rightly a 422), the long poll
`GET /v1/driver/offers/next` is asked not to wait (its `wait` goes up to
20 s per example), and `DELETE /v1/sessions/current` is called with a fresh token
each time so the role's own token survives the run.
"""

from __future__ import annotations

import math
import threading

import orjson
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, seed, settings
from schemathesis.checks import CHECKS, load_all_checks

from common.geo import haversine_m
from gateway.config import GatewaySettings
from gateway.routes.site import render_openapi
from tests.client import OPS_PASSWORD, OPS_USER, PASSWORD, driver_body, rider_body
from tests.proofs.support import PROOF_ENV, record_figures, start_proof_system

pytestmark = pytest.mark.slow

REACH_M = GatewaySettings().max_trip_distance_m
SEED = 20261127
MAX_EXAMPLES = 15
STATEFUL_SCENARIOS = 10
STATEFUL_STEPS = 8
REQUEST_TIMEOUT_S = 15

CONFIG = {"seed": SEED, "generation": {"max-examples": MAX_EXAMPLES}}

ROLES = ("rider", "driver", "ops")
_tally: dict[str, dict[str, int]] = {r: {"examples": 0, "failures": 0} for r in ROLES}
_lock = threading.Lock()


class FuzzSystem:
    def __init__(self, base) -> None:
        self.ps = start_proof_system(base)
        self.url = self.ps.url
        self.http = requests.Session()
        self.tokens: dict[str, str] = {}
        self.users: dict[str, str] = {}
        for role, body in (("rider", rider_body("fuzzrider")),
                           ("driver", driver_body("fuzzdriver"))):
            r = self.http.post(f"{self.url}/v1/{role}s", json=body, timeout=10)
            assert r.status_code == 201, r.text
            self.users[role] = body["user_name"]
            self.tokens[role] = self.login(body["user_name"], PASSWORD)
        self.users["ops"] = OPS_USER
        self.tokens["ops"] = self.login(OPS_USER, OPS_PASSWORD)

    def login(self, user_name: str, password: str) -> str:
        r = self.http.post(f"{self.url}/v1/sessions",
                           json={"user_name": user_name, "password": password}, timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def stop(self) -> None:
        self.http.close()
        self.ps.stop()


@pytest.fixture(scope="module")
def fuzz_system(tmp_path_factory):
    s = FuzzSystem(tmp_path_factory.mktemp("schemathesis"))
    yield s
    s.stop()


def the_document() -> dict:
    """/openapi.json as the gateway of `fuzz_system` serves it (same code, same
    settings), so the tests are collected before any process runs.
    (Schemathesis' lazy `from_fixture` loader does not run on pytest 9.)
    `test_the_fuzzed_document_is_the_served_one` holds the two equal."""
    from gateway.openapi import build
    from gateway.routes import route_table

    return orjson.loads(render_openapi(build(route_table(), GatewaySettings.from_env(env=PROOF_ENV))))


DOCUMENT = the_document()
# /v1/ops/events never ends, so it is left out. A trip's stream lasts as long
# as the trip: generated ids reach it (404, 422) one request at a time, but
# the state machine, which would open it on a live trip it just created,
# leaves it out (its messages are checked against this document in
# tests/e2e/test_operations.py).
schema = schemathesis.openapi.from_dict(
    DOCUMENT, config=schemathesis.Config.from_dict(CONFIG)
).exclude(path="/v1/ops/events")


def test_the_fuzzed_document_is_the_served_one(fuzz_system):
    served = fuzz_system.http.get(f"{fuzz_system.url}/openapi.json", timeout=10)
    assert served.status_code == 200
    assert served.json() == DOCUMENT


def _all_checks() -> list:
    load_all_checks()
    return CHECKS.get_all()


def prepare(fuzz_system: FuzzSystem, role: str, case) -> str:
    """The client-side adjustments (see the module's docstring); the token to use."""
    token = fuzz_system.tokens[role]
    if case.path == "/v1/sessions/current" and case.method == "DELETE":
        token = fuzz_system.login(fuzz_system.users[role],
                                  OPS_PASSWORD if role == "ops" else PASSWORD)
    if case.path == "/v1/trips" and case.method == "GET" and isinstance(case.query, dict):
        # The cursor is opaque: valid only as a previous page gave it, so a
        # generated one is rightly a 422. Pages are walked in the e2e tests.
        case.query.pop("cursor", None)
    if case.path in ("/v1/estimates", "/v1/trips") and case.method == "POST":
        within_reach(case.body)
    if case.path == "/v1/driver/offers/next" and isinstance(case.query, dict):
        try:
            long_poll = float(case.query.get("wait", 0)) > 0
        except (TypeError, ValueError):
            long_poll = False  # a malformed wait: the 400 it gets is the point
        if long_poll:
            case.query["wait"] = 0
    return token


def within_reach(body) -> None:
    """A drop-off's reach depends on its pickup (MAX_TRIP_DISTANCE_M), which a
    JSON schema cannot say: a generated drop-off of two valid coordinates that
    lies out of reach is moved onto its pickup. Any other drop-off (a wrong
    type, a missing or out-of-range coordinate) goes as it was generated."""
    if not isinstance(body, dict):
        return
    pickup, dropoff = body.get("pickup"), body.get("dropoff")
    points = (pickup, dropoff)
    if not all(isinstance(p, dict) and _coord(p.get("lat"), 90) and _coord(p.get("lon"), 180)
               for p in points):
        return
    if haversine_m(pickup["lat"], pickup["lon"], dropoff["lat"], dropoff["lon"]) > REACH_M:
        dropoff.update(lat=pickup["lat"], lon=pickup["lon"])


def _coord(value, limit: float) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value) and -limit <= value <= limit)


def count(role: str, failed: bool = False) -> None:
    with _lock:
        _tally[role]["failures" if failed else "examples"] += 1
    record_figures("schemathesis", {"seed": SEED, "max_examples_per_operation": MAX_EXAMPLES,
                                    **{f"{r}_{k}": v for r in ROLES
                                       for k, v in _tally[r].items()}})


def exercise(fuzz_system: FuzzSystem, role: str, case) -> None:
    token = prepare(fuzz_system, role, case)
    count(role)
    try:
        case.call_and_validate(
            base_url=fuzz_system.url,
            headers={"Authorization": f"Bearer {token}"},
            checks=_all_checks(),
            timeout=REQUEST_TIMEOUT_S,
        )
    except BaseException:
        count(role, failed=True)
        raise


# Anonymous routes are fuzzed once, in the rider's run.
SIGN_UP = ["/v1/riders", "/v1/drivers", "/v1/sessions"]
FUZZ_SETTINGS = dict(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@seed(SEED)
@settings(**FUZZ_SETTINGS)
def test_as_a_rider(fuzz_system, case):
    exercise(fuzz_system, "rider", case)


@schema.exclude(path=SIGN_UP).parametrize()
@seed(SEED)
@settings(**FUZZ_SETTINGS)
def test_as_a_driver(fuzz_system, case):
    exercise(fuzz_system, "driver", case)


@schema.exclude(path=SIGN_UP).parametrize()
@seed(SEED)
@settings(**FUZZ_SETTINGS)
def test_as_ops(fuzz_system, case):
    exercise(fuzz_system, "ops", case)


def _stateful(fuzz_system: FuzzSystem, role: str, machine_schema) -> int:
    """Run the state machine of `machine_schema` as `role`; returns its links."""
    base = machine_schema.as_state_machine()

    class Scenario(base):  # type: ignore[misc,valid-type]
        def before_call(self, case) -> None:
            self._token = prepare(fuzz_system, role, case)
            count(role)

        def get_call_kwargs(self, case) -> dict:
            return {"base_url": fuzz_system.url, "timeout": REQUEST_TIMEOUT_S,
                    "headers": {"Authorization": f"Bearer {self._token}"}}

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            try:
                case.validate_response(response, checks=_all_checks(), transport_kwargs=kwargs)
            except BaseException:
                count(role, failed=True)
                raise

    Scenario.run(settings=settings(
        max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS,
        derandomize=True, **{k: v for k, v in FUZZ_SETTINGS.items() if k != "max_examples"},
    ))
    # Transitions along links are named `<source>___<status>_<link>__<target>`.
    return len([name for name in dir(base) if "___" in name])


@pytest.mark.parametrize("role", ROLES)
def test_stateful_scenarios(fuzz_system, role):
    """Operations chained by the document's links (given or inferred by
    Schemathesis: a trip created, then read, cancelled, rated ...)."""
    streams = schema.exclude(path_regex=r"/events$")
    machine_schema = streams if role == "rider" else streams.exclude(path=SIGN_UP)
    rules = _stateful(fuzz_system, role, machine_schema)
    record_figures("schemathesis", {f"{role}_stateful_links": rules})
    assert rules > 0
