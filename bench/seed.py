"""Seeding through the public API: riders, drivers, sessions and trips.

Every object the HTTP scenarios use is made the way a client makes it: sign
up, log in, go online, report a location, request a trip, poll the offer and
accept it. The matched baselines read copies of the same documents, so both
sides move the same bytes.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from common import keys
from common.regions import DEFAULT_REGIONS
from common.retry import retrying

from .baseline import session_key

PASSWORD = "benchmark-password-1"
REGION = DEFAULT_REGIONS[0]
CENTER = {"lat": 37.7749, "lon": -122.4194}
DROPOFF = {"lat": 37.7949, "lon": -122.4094}
# Concurrency of sign-ups and logins (argon2 hashes run in the gateway's pool).
SIGNUP_CONCURRENCY = 8
# Session tokens that the fixed-route scenarios spread their requests over.
# Each token has its own rate-limit bucket (RATE_LIMIT_PER_TOKEN, 50/s by
# default, bursts of 100): a route that reaches ~1,300 req/s on a quiet 2-core
# machine would exhaust 8 tokens, and a 429 is an error. 48 tokens allow
# 2,400 req/s sustained, so the scenarios measure the route, not the limit.
MIN_TOKENS = 48


class SeedError(RuntimeError):
    pass


@dataclass
class Account:
    user_name: str
    subject_id: str
    token: str
    role: str


@dataclass
class Seeded:
    view_riders: list[Account] = field(default_factory=list)
    # trip id of each view rider, assigned to the driver at the same index
    view_trips: list[str] = field(default_factory=list)
    assigned_drivers: list[Account] = field(default_factory=list)
    location_drivers: list[Account] = field(default_factory=list)
    loop_riders: list[Account] = field(default_factory=list)


def near(point: dict, meters: float, rng: random.Random) -> dict:
    """A point within `meters` of `point` (a small-area approximation)."""
    dlat = (rng.random() * 2 - 1) * meters / 111_000
    dlon = (rng.random() * 2 - 1) * meters / 88_000
    return {"lat": round(point["lat"] + dlat, 6), "lon": round(point["lon"] + dlon, 6)}


# Tries of one call that is answered "later" (429, 503...).
SEED_ATTEMPTS = 6


@dataclass(slots=True)
class Answer:
    status: int
    headers: Any
    body: Any


class Client:
    """A thin JSON client of the gateway."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "Client":
        self.session = aiohttp.ClientSession(
            self.base_url, connector=aiohttp.TCPConnector(limit=256),
            timeout=aiohttp.ClientTimeout(total=60),
        )
        return self

    async def __aexit__(self, *exc) -> None:
        await self.session.close()

    async def call(self, method: str, path: str, *, token: str | None = None,
                   json: dict | None = None, params: dict | None = None,
                   expect: tuple[int, ...] = (200, 201, 204)):
        headers = {"Authorization": f"Bearer {token}"} if token else {}

        async def once() -> Answer:
            async with self.session.request(method, path, json=json, params=params,
                                            headers=headers) as resp:
                body = await resp.json(content_type=None) if resp.status != 204 else None
                return Answer(resp.status, resp.headers, body)

        # As the API asks of a client: "later" (an overloaded gateway just
        # after the overload scenario, a rate limit) is retried after its
        # Retry-After.
        answer = await retrying(attempts=SEED_ATTEMPTS)(once)
        if answer.status not in expect:
            raise SeedError(f"{method} {path} answered {answer.status}: {answer.body}")
        return answer.status, answer.body


async def sign_up(client: Client, role: str, prefix: str, product: str = "standard") -> Account:
    user_name = f"{prefix}-{secrets.token_hex(4)}"
    body = {
        "user_name": user_name,
        "password": PASSWORD,
        "first_name": "Bench",
        "last_name": "Mark",
        "email": f"{user_name}@example.com",
    }
    if role == "rider":
        body["age"] = 30
        path = "/v1/riders"
    else:
        body["car"] = {"make": "Toyota", "model": "Prius", "color": "blue",
                       "plate": f"B{secrets.token_hex(3).upper()}", "seats": 4}
        body["product"] = product
        path = "/v1/drivers"
    _, profile = await client.call("POST", path, json=body, expect=(201,))
    _, session = await client.call(
        "POST", "/v1/sessions", json={"user_name": user_name, "password": PASSWORD}, expect=(201,)
    )
    return Account(user_name, profile["id"], session["token"], role)


async def sign_up_many(client: Client, n: int, role: str, prefix: str,
                       product: str = "standard") -> list[Account]:
    gate = asyncio.Semaphore(SIGNUP_CONCURRENCY)

    async def one() -> Account:
        async with gate:
            return await sign_up(client, role, prefix, product)

    return list(await asyncio.gather(*(one() for _ in range(n))))


async def log_in(client: Client, account: Account) -> Account:
    """Another session of the same account (its own token and rate bucket)."""
    _, session = await client.call(
        "POST", "/v1/sessions", json={"user_name": account.user_name, "password": PASSWORD},
        expect=(201,),
    )
    return Account(account.user_name, account.subject_id, session["token"], account.role)


async def spread_sessions(client: Client, accounts: list[Account]) -> list[list[Account]]:
    """Each account with as many sessions as it takes for the accounts to hold
    MIN_TOKENS tokens together: the account first, then its extra logins."""
    extra = max(0, -(-MIN_TOKENS // max(1, len(accounts))) - 1)
    gate = asyncio.Semaphore(SIGNUP_CONCURRENCY)

    async def one(account: Account) -> Account:
        async with gate:
            return await log_in(client, account)

    more = await asyncio.gather(*(one(a) for a in accounts for _ in range(extra)))
    return [[a, *more[i * extra:(i + 1) * extra]] for i, a in enumerate(accounts)]


async def go_online(client: Client, driver: Account, where: dict) -> None:
    await client.call("POST", "/v1/driver/status", token=driver.token, json={"status": "online"})
    await client.call("PUT", "/v1/driver/location", token=driver.token, json=where)


async def assign_trips(client: Client, riders: list[Account], drivers: list[Account],
                       rng: random.Random, product: str = "standard",
                       timeout_s: float = 60.0) -> list[tuple[str, str]]:
    """Each rider requests a trip; the drivers accept what they are offered.
    Returns (trip id, driver id) per rider, in the riders' order."""
    trip_ids = []
    for rider in riders:
        _, trip = await client.call(
            "POST", "/v1/trips", token=rider.token, expect=(201,),
            json={"pickup": near(CENTER, 300, rng), "dropoff": DROPOFF, "product": product},
        )
        trip_ids.append(trip["id"])
    assigned: dict[str, str] = {}

    async def drive(driver: Account) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline and len(assigned) < len(trip_ids):
            status, offer = await client.call(
                "GET", "/v1/driver/offers/next", token=driver.token, params={"wait": 2}
            )
            if status == 204:
                continue
            status, _ = await client.call(
                "POST", f"/v1/driver/offers/{offer['trip_id']}/accept", token=driver.token,
                expect=(200, 409),
            )
            if status == 200:
                assigned[offer["trip_id"]] = driver.subject_id
                return

    await asyncio.gather(*(drive(d) for d in drivers))
    missing = [t for t in trip_ids if t not in assigned]
    if missing:
        raise SeedError(f"{len(missing)} of {len(trip_ids)} seeded trips were not assigned")
    return [(t, assigned[t]) for t in trip_ids]


async def seed(gateway_url: str, redis, *, view: int, location: int, loop_riders: int,
               rng: random.Random) -> Seeded:
    out = Seeded()
    async with Client(gateway_url) as client:
        out.view_riders, out.assigned_drivers, out.location_drivers, out.loop_riders = (
            await asyncio.gather(
                sign_up_many(client, view, "rider", "view"),
                sign_up_many(client, view, "driver", "assigned", "standard"),
                sign_up_many(client, location, "driver", "loc", "xl"),
                sign_up_many(client, loop_riders, "rider", "loop"),
            )
        )
        await asyncio.gather(*(go_online(client, d, near(CENTER, 300, rng))
                               for d in out.assigned_drivers))
        pairs = await assign_trips(client, out.view_riders, out.assigned_drivers, rng)
        by_id = {d.subject_id: d for d in out.assigned_drivers}
        out.view_trips = [t for t, _ in pairs]
        out.assigned_drivers = [by_id[d] for _, d in pairs]
        await asyncio.gather(*(go_online(client, d, near(CENTER, 2000, rng))
                               for d in out.location_drivers))
        # The same accounts and trips, over enough session tokens (MIN_TOKENS).
        riders = await spread_sessions(client, out.view_riders)
        out.view_trips = [t for t, s in zip(out.view_trips, riders) for _ in s]
        out.assigned_drivers = [d for d, s in zip(out.assigned_drivers, riders) for _ in s]
        out.view_riders = [r for s in riders for r in s]
        out.location_drivers = [
            d for s in await spread_sessions(client, out.location_drivers) for d in s
        ]
    await copy_sessions(redis, [*out.view_riders, *out.location_drivers])
    return out


async def cancel_open_trips(gateway_url: str, riders: list[Account]) -> int:
    """Cancel the riders' open trips (a loop stopped between a create and its
    cancel), so the next round starts with every rider free."""
    cancelled = 0
    async with Client(gateway_url) as client:
        for rider in riders:
            _, page = await client.call("GET", "/v1/trips", token=rider.token, params={"limit": 1})
            for trip in (page or {}).get("items", []):
                if trip["status"] in ("requested", "assigned", "arrived"):
                    await client.call("POST", f"/v1/trips/{trip['id']}/cancel", token=rider.token,
                                      json={}, expect=(200, 409))
                    cancelled += 1
    return cancelled


async def copy_sessions(redis, accounts: list[Account]) -> None:
    """The baselines' session hashes: the same fields as the gateway's, named
    by the raw token (the baseline does no auth logic, only the read)."""
    async with redis.pipeline(transaction=False) as pipe:
        for a in accounts:
            pipe.hset(session_key(a.token), mapping={
                "subject_id": a.subject_id, "role": a.role, "region": REGION.name,
                "user_name": a.user_name, "created_at": "0", "max_exp": "0",
            })
        await pipe.execute()


def trip_key(trip_id: str) -> str:
    return keys.trip(trip_id)


def driver_key(driver_id: str) -> str:
    return keys.driver(driver_id)
