"""Concurrent riders and drivers on the public API, and the ledger of what
they attempted and what they saw acknowledged (a 2xx answer).

The clients behave as careful mobile apps would: a failed or unanswered call
is retried (a trip request with the same Idempotency-Key and body), a lost
answer is recovered by reading the state back. They never fail on an error:
errors are expected while Redis is down. Everything they were told succeeded
goes into the ledger, which `checker.py` holds the database to.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import secrets
import time
from dataclasses import dataclass, field

import aiohttp

from tests.client import ApiClient, driver_body, rider_body
from tests.proofs.support import CENTER, around, proof_client

ACTIVE = ("requested", "assigned", "arrived", "in_progress")
TERMINAL = ("completed", "cancelled", "expired")
NEXT_STEP = {"assigned": "arrive", "arrived": "start", "in_progress": "complete"}
# How long a client keeps retrying one write before it gives up on it.
RETRY_BUDGET_S = 30.0


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class TripAck:
    trip_id: str
    rider_id: str
    key: str
    status: str
    driver_id: str | None = None


@dataclass
class WriteAnswer:
    """An acknowledged write call: when it was sent and answered, what it was."""

    sent: float
    answered: float
    method: str
    path: str
    body: dict | None
    reply: object
    token: str | None


@dataclass
class Ledger:
    """What clients attempted, and every write they saw acknowledged."""

    # user name -> role, for every sign-up sent (answered or not)
    attempted_users: dict[str, str] = field(default_factory=dict)
    # user name -> subject id, acknowledged sign-ups (201)
    accounts: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)
    # user names a login was sent for
    login_attempted: set[str] = field(default_factory=set)
    # token digest -> (user name, subject id): acknowledged logins still in use
    sessions: dict[str, tuple[str, str]] = field(default_factory=dict)
    # token digests of acknowledged logouts (204)
    logged_out: set[str] = field(default_factory=set)
    # token digests of logouts sent but not acknowledged (may have happened)
    logout_unconfirmed: set[str] = field(default_factory=set)
    # (rider id, idempotency key) -> the body sent: every trip request attempted
    trip_attempts: dict[tuple[str, str], dict] = field(default_factory=dict)
    # trip id -> the latest acknowledged state
    trips: dict[str, TripAck] = field(default_factory=dict)
    # (rider id, key) -> trip id: acknowledged creations with a key
    idempotency: dict[tuple[str, str], str] = field(default_factory=dict)
    # trip id -> stars of an acknowledged rating
    ratings: dict[str, int] = field(default_factory=dict)
    # driver ids whose going online was acknowledged (they never go offline)
    online_drivers: set[str] = field(default_factory=set)
    # what the database held before these clients started (see checker.existing)
    preexisting: dict[str, set[str]] = field(default_factory=dict)
    # every acknowledged write call, sent and answered on the monotonic clock
    write_answers: list[WriteAnswer] = field(default_factory=list)
    # status -> count of the calls without a 2xx answer (0: no answer at all)
    statuses: dict[int, int] = field(default_factory=dict)
    acked_writes: int = 0
    attempts: int = 0
    failures: int = 0  # calls without a 2xx answer (503, 504, no answer, ...)

    def first_write_after(self, moment: float, where=None) -> float | None:
        """When the first write sent after `moment` was acknowledged (of
        those `where(answer)` accepts)."""
        answered = [w.answered for w in self.write_answers
                    if w.sent >= moment and (where is None or where(w))]
        return min(answered) if answered else None

    def ack_trip(self, body: dict, key: str | None = None) -> None:
        status = body["status"]
        trip_id = body["id"]
        known = self.trips.get(trip_id)
        if known is None:
            known = self.trips[trip_id] = TripAck(trip_id, body["rider_id"], key or "", status)
        if key:
            known.key = key
        # The acknowledged state only moves forward (answers can arrive out of order).
        if RANK[status] >= RANK[known.status] or status in TERMINAL:
            known.status = status
        if body.get("driver_id"):
            known.driver_id = body["driver_id"]
        self.acked_writes += 1


RANK = {"requested": 0, "assigned": 1, "arrived": 2, "in_progress": 3,
        "completed": 4, "cancelled": 4, "expired": 4}


@dataclass
class Load:
    base: str
    ledger: Ledger
    rng: random.Random
    riders: int = 10
    drivers: int = 6
    signups: int = 1  # workers that keep signing up and logging in new riders
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task] = field(default_factory=list)
    _session: aiohttp.ClientSession | None = None
    _seq: int = 0

    async def start(self) -> None:
        self.stop = asyncio.Event()
        connector = aiohttp.TCPConnector(limit=200)
        self._session = aiohttp.ClientSession(connector=connector)
        for i in range(self.drivers):
            self.tasks.append(asyncio.create_task(self._driver(i), name=f"driver-{i}"))
        for i in range(self.riders):
            self.tasks.append(asyncio.create_task(self._rider(i), name=f"rider-{i}"))
        for i in range(self.signups):
            self.tasks.append(asyncio.create_task(self._signups(i), name=f"signup-{i}"))

    async def finish(self) -> None:
        """Stop the clients after the calls in hand, and close the session."""
        self.stop.set()
        results = await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        await self._session.close()
        for r in results:
            if isinstance(r, BaseException):
                raise r

    # --- helpers ---------------------------------------------------------
    def _api(self) -> ApiClient:
        return proof_client(self._session, self.base)

    async def _pause(self, low: float = 0.05, high: float = 0.25) -> None:
        # Pacing between a client's own calls, not synchronisation.
        try:
            await asyncio.wait_for(self.stop.wait(), self.rng.uniform(low, high))
        except asyncio.TimeoutError:
            pass

    def _name(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}{self._seq}{secrets.token_hex(3)}"

    async def _call(self, api: ApiClient, method: str, path: str, json=None, **kw):
        self.ledger.attempts += 1
        sent = time.monotonic()
        a = await api.call(method, path, json, **kw)
        if not a.ok:
            self.ledger.failures += 1
            self.ledger.statuses[a.status] = self.ledger.statuses.get(a.status, 0) + 1
        elif method != "GET":
            self.ledger.write_answers.append(
                WriteAnswer(sent, time.monotonic(), method, path, json, a.body, api.token))
        return a

    async def _sign_up(self, api: ApiClient, role: str) -> bool:
        """Sign up (a new name after a failure) and log in; False when stopping."""
        while not self.stop.is_set():
            name = self._name("r" if role == "rider" else "d")
            self.ledger.attempted_users[name] = role
            if role == "rider":
                a = await self._call(api, "POST", "/v1/riders", rider_body(name))
            else:
                a = await self._call(api, "POST", "/v1/drivers", driver_body(name))
            if a.status == 201:
                self.ledger.accounts[name] = a.body["id"]
                self.ledger.roles[name] = role
                self.ledger.acked_writes += 1
                if await self._log_in(api, name):
                    return True
                continue
            await self._pause()
        return False

    async def _log_in(self, api: ApiClient, name: str) -> bool:
        while not self.stop.is_set():
            self.ledger.login_attempted.add(name)
            a = await self._call(api, "POST", "/v1/sessions",
                                 {"user_name": name, "password": rider_body(name)["password"]})
            if a.status == 201:
                api.token = a.body["token"]
                api.subject_id = a.body["subject_id"]
                api.user_name = name
                self.ledger.sessions[token_digest(api.token)] = (name, api.subject_id)
                self.ledger.acked_writes += 1
                return True
            await self._pause()
        return False

    async def _log_out(self, api: ApiClient) -> None:
        a = await self._call(api, "DELETE", "/v1/sessions/current")
        digest = token_digest(api.token)
        if a.status == 204:
            self.ledger.sessions.pop(digest, None)
            self.ledger.logged_out.add(digest)
            self.ledger.acked_writes += 1
        elif a.status in (0, 503, 504):
            # Unanswered or unconfirmed: the session may be gone or not (a
            # deletion its replicas did not confirm in time is not undone).
            # Either is right; it is no longer an acknowledged session.
            self.ledger.sessions.pop(digest, None)
            self.ledger.logout_unconfirmed.add(digest)
        await self._log_in(api, api.user_name)

    # --- riders ----------------------------------------------------------
    async def _signups(self, i: int) -> None:
        while not self.stop.is_set():
            api = self._api()
            await self._sign_up(api, "rider")
            await self._pause(0.1, 0.4)

    async def _rider(self, i: int) -> None:
        api = self._api()
        if not await self._sign_up(api, "rider"):
            return
        while not self.stop.is_set():
            trip = await self._request_trip(api)
            if trip is not None:
                await self._follow(api, trip)
            if self.rng.random() < 0.2 and not self.stop.is_set():
                await self._log_out(api)
            await self._pause()

    async def _request_trip(self, api: ApiClient) -> dict | None:
        """One trip request, retried with its key until it is answered."""
        self._seq += 1
        key = f"k-{self._seq}-{secrets.token_hex(6)}"
        pickup = around(CENTER, self.rng.uniform(-0.01, 0.01), self.rng.uniform(-0.01, 0.01))
        # The dropoff is unique per attempt: a trip in Redis names its attempt.
        dropoff = around(CENTER, 0.02 + self._seq * 1e-6, 0.01)
        body = {"pickup": pickup, "dropoff": dropoff, "product": "standard"}
        self.ledger.trip_attempts[(api.subject_id, key)] = body
        deadline = asyncio.get_running_loop().time() + RETRY_BUDGET_S
        while asyncio.get_running_loop().time() < deadline:
            a = await self._call(api, "POST", "/v1/trips", body,
                                 headers={"Idempotency-Key": key})
            if a.status == 201:
                self.ledger.ack_trip(a.body, key)
                self.ledger.idempotency[(api.subject_id, key)] = a.body["id"]
                return a.body
            if a.status == 409 and a.body and "active trip" in (a.body.get("detail") or ""):
                return await self._active_trip(api)
            if a.status == 401:
                await self._log_in(api, api.user_name)
            # 503/504/no answer, or 409 "still in progress": same key, same body.
            await self._pause(0.1, 0.3)
        return None

    async def _active_trip(self, api: ApiClient) -> dict | None:
        a = await self._call(api, "GET", "/v1/trips", params={"limit": "5"})
        if a.status == 200:
            for t in a.body["items"]:
                if t["status"] in ACTIVE:
                    return t
        return None

    async def _follow(self, api: ApiClient, trip: dict) -> None:
        """Watch the trip until it ends; sometimes cancel it while it waits."""
        cancel = self.rng.random() < 0.25
        while not self.stop.is_set():
            a = await self._call(api, "GET", f"/v1/trips/{trip['id']}")
            if a.status == 200:
                status = a.body["status"]
                if status == "completed" and self.rng.random() < 0.6:
                    await self._rate(api, trip["id"])
                if status in TERMINAL:
                    return
                if cancel and status in ("requested", "assigned"):
                    c = await self._call(api, "POST", f"/v1/trips/{trip['id']}/cancel",
                                         {"reason": "changed my mind"})
                    if c.status == 200:
                        self.ledger.ack_trip(c.body)
                        return
                    cancel = c.status != 409  # 409: it moved on; let it finish
            elif a.status == 401:
                await self._log_in(api, api.user_name)
            await self._pause(0.1, 0.3)

    async def _rate(self, api: ApiClient, trip_id: str) -> None:
        stars = self.rng.randint(1, 5)
        a = await self._call(api, "POST", f"/v1/trips/{trip_id}/rating",
                             {"stars": stars, "comment": "thanks"})
        if a.status == 200:
            self.ledger.ratings[trip_id] = stars
            self.ledger.acked_writes += 1

    # --- drivers ---------------------------------------------------------
    async def _driver(self, i: int) -> None:
        api = self._api()
        if not await self._sign_up(api, "driver"):
            return
        spot = around(CENTER, self.rng.uniform(-0.01, 0.01), self.rng.uniform(-0.01, 0.01))
        online = False
        while not self.stop.is_set():
            if not online:
                loc = await self._call(api, "PUT", "/v1/driver/location", spot)
                on = await self._call(api, "POST", "/v1/driver/status", {"status": "online"})
                online = loc.status == 204 and on.status == 200
                if online:
                    self.ledger.online_drivers.add(api.subject_id)
                    self.ledger.acked_writes += 2
                else:
                    await self._pause()
                continue
            current = await self._call(api, "GET", "/v1/driver/trip")
            if current.status == 200:
                trip = current.body
                action = NEXT_STEP.get(trip["status"])
                if action:
                    a = await self._call(api, "POST", f"/v1/trips/{trip['id']}/{action}")
                    if a.status == 200:
                        self.ledger.ack_trip(a.body)
                continue
            if current.status == 204:
                offer = await self._call(api, "GET", "/v1/driver/offers/next",
                                         params={"wait": "1"}, timeout=8)
                if offer.status == 200:
                    a = await self._call(api, "POST",
                                         f"/v1/driver/offers/{offer.body['trip_id']}/accept")
                    if a.status == 200:
                        self.ledger.ack_trip(a.body)
                continue
            if current.status == 401:
                await self._log_in(api, api.user_name)
            await self._pause()
