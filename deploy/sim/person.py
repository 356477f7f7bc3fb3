"""What every app user does: an account, a session, calls that survive expiry,
a life that starts over after a failure."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING

from common.retry import backoff_s
from deploy.sim.client import Reply

if TYPE_CHECKING:
    from deploy.sim.city import City

logger = logging.getLogger(__name__)

FIRST_NAMES = (
    "Ava", "Ben", "Carla", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal",
    "Kai", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq",
    "Uma", "Victor", "Wen", "Ximena", "Yusuf", "Zoe",
)
LAST_NAMES = (
    "Alvarez", "Brennan", "Chen", "Dubois", "Eze", "Fischer", "Garcia", "Haddad", "Ito",
    "Jensen", "Kowalski", "Lopez", "Moreau", "Nguyen", "Okafor", "Patel", "Rossi", "Silva",
    "Tanaka", "Usman", "Vargas", "Wong", "Yamamoto", "Zhang",
)


def pick_product(rng: random.Random, offered: tuple[str, ...],
                 weights: Mapping[str, float]) -> str:
    """One of the products the system offers, by the city's weights; a product
    the city has no weight for gets an even share (1 / the number offered)."""
    even = 1.0 / len(offered)
    return rng.choices(offered, [weights.get(p, even) for p in offered])[0]


class SignedOut(Exception):
    """The account could not sign in; the user starts over after a pause."""


class Person:
    """What every app user does: an account, a session, calls that survive expiry."""

    kind = "person"

    def __init__(self, city: City, number: int) -> None:
        self.city = city
        self.cfg = city.cfg
        self.api = city.api
        self.stats = city.stats
        self.graph = city.graph
        self.rng = random.Random(None if city.cfg.seed is None else city.cfg.seed * 7919 + number)
        self.number = number
        self.user_name = f"city.{self.kind[0]}.{self.cfg.run_id}.{number:03d}"
        self.password = hmac.new(
            self.cfg.secret.encode(), self.user_name.encode(), hashlib.sha256
        ).hexdigest()[:24]
        self.first_name = self.rng.choice(FIRST_NAMES)
        self.last_name = self.rng.choice(LAST_NAMES)
        self.token: str | None = None
        self.state = "starting"

    def profile(self) -> dict:
        raise NotImplementedError

    async def leave(self) -> None:
        """Called once at shutdown, after the person's task has stopped."""

    async def sign_in(self) -> None:
        reply = await self.api.call("POST", f"/v1/{self.kind}s", json_body=self.profile())
        if reply.status == 201:
            self.stats.add(f"{self.kind}s_signed_up")
        elif reply.status != 409:  # 409: the name is taken, by our earlier run: log in
            raise SignedOut(f"sign-up: {reply.describe()}")
        await self.log_in()

    async def log_in(self) -> None:
        reply = await self.api.call(
            "POST", "/v1/sessions",
            json_body={"user_name": self.user_name, "password": self.password},
        )
        if reply.status != 201 or not isinstance(reply.body, dict):
            raise SignedOut(f"log-in: {reply.describe()}")
        self.token = reply.body["token"]

    async def call(self, method: str, path: str, **kwargs) -> Reply:
        reply = await self.api.call(method, path, token=self.token, **kwargs)
        if reply.status == 401:
            await self.log_in()  # the session expired or was revoked
            reply = await self.api.call(method, path, token=self.token, **kwargs)
        return reply

    async def sleep(self, real_s: float) -> None:
        await asyncio.sleep(max(0.0, real_s))

    async def run(self) -> None:
        """Live until cancelled; any failure is logged and the day starts over."""
        failures = 0
        while True:
            try:
                if self.token is None:
                    await self.sign_in()
                await self.live()
                failures = 0
            except asyncio.CancelledError:
                raise
            except SignedOut as exc:
                failures += 1
                self.token = None
                self.state = "signed out"
                logger.warning("%s cannot sign in: %s", self.user_name, exc)
            except Exception:
                failures += 1
                logger.exception("%s: unexpected error; starting over", self.user_name)
                self.stats.add("errors")
            await self.sleep(backoff_s(min(failures, 6)))

    async def live(self) -> None:
        raise NotImplementedError
