"""Passwords: the policy (a minimum length and no password from the list of
the 30,000 most common ones, the list zxcvbn ships, a kept package; checked
at sign-up, at a password change and for the ops account at start) and the
hashing (argon2id in a few threads, logins first, a bounded queue)."""

from __future__ import annotations

import asyncio
import itertools
import queue
import secrets
import threading
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from prometheus_client import Counter, Gauge

from common import errors

from .config import GatewaySettings

MIN_LENGTH = 8
# The ops account guards every trip and driver: longer, and never a placeholder.
OPS_MIN_LENGTH = 16
# Parts of the placeholders deployment files and examples carry.
PLACEHOLDERS = (
    "replace", "change-me", "change_me", "changeme", "choose", "placeholder", "example",
    "your-", "xxxx", "todo",
)


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def problems(password: str, user_name: str = "", min_length: int = MIN_LENGTH) -> str | None:
    """Why a password is refused, as a field message, or None."""
    if len(password) < min_length:
        return f"must be at least {min_length} characters long"
    lowered = password.lower()
    if lowered in common_passwords():
        return "is one of the most common passwords; choose another"
    if user_name and user_name.lower() == lowered:
        return "must not be the user name"
    return None


def ops_password_problem(password: str, user_name: str) -> str | None:
    """Why the configured ops password is refused (the gateway does not start)."""
    found = problems(password, user_name, OPS_MIN_LENGTH)
    if found:
        return found
    lowered = password.lower()
    if any(p in lowered for p in PLACEHOLDERS):
        return "looks like a placeholder (replace, change-me, choose, example...)"
    return None


HASH_QUEUE = Gauge("gateway_hash_queue", "Password hashes waiting for a hashing thread")
HASH_REFUSED = Counter(
    "gateway_hash_refused_total", "Password hashes refused because the queue was full"
)


# Hashing jobs by priority: a login (verify) goes before every waiting
# sign-up or password change (hash), so a flood of sign-ups delays a login by
# at most the hash each thread has in hand.
LOGIN, NEW_PASSWORD = 0, 1


class HashQueueFull(errors.Unavailable):
    def __init__(self, limit: int) -> None:
        super().__init__(
            f"The gateway has {limit} password checks waiting; retry shortly.",
            headers={"Retry-After": "1"},
        )


class Hasher:
    """argon2id off the event loop, in `hash_workers` threads that take jobs
    logins first; at most `hash_queue_max` jobs wait (more: 503)."""

    def __init__(self, config: GatewaySettings) -> None:
        self._ph = PasswordHasher(
            time_cost=config.argon2_time_cost,
            memory_cost=config.argon2_memory_kib,
            parallelism=config.argon2_parallelism,
            type=Type.ID,
        )
        self.queue_max = config.hash_queue_max
        self._jobs: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._waiting = 0  # jobs queued, not yet taken by a thread (loop thread only)
        self._threads = [
            threading.Thread(target=self._work, name=f"argon2-{i}", daemon=True)
            for i in range(max(1, config.hash_workers))
        ]
        for thread in self._threads:
            thread.start()
        self._dummy: str | None = None

    @property
    def waiting(self) -> int:
        return self._waiting

    def _work(self) -> None:
        while True:
            _, _, job = self._jobs.get()
            if job is None:
                return
            loop, future, fn, args = job
            loop.call_soon_threadsafe(self._taken)
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the waiting request
                loop.call_soon_threadsafe(_settle, future, None, exc)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)

    def _taken(self) -> None:
        self._waiting -= 1
        HASH_QUEUE.set(self._waiting)

    async def _run(self, priority: int, fn, *args):
        if self.queue_max > 0 and self._waiting >= self.queue_max:
            HASH_REFUSED.inc()
            raise HashQueueFull(self.queue_max)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._waiting += 1
        HASH_QUEUE.set(self._waiting)
        self._jobs.put((priority, next(self._order), (loop, future, fn, args)))
        return await future

    async def hash(self, password: str) -> str:
        return await self._run(NEW_PASSWORD, self._ph.hash, password)

    async def verify(self, encoded: str | None, password: str) -> bool:
        """Constant work whether or not the account exists: an unknown user is
        checked against a dummy hash, so timing does not reveal user names."""
        if encoded is None:
            if self._dummy is None:
                self._dummy = await self._run(LOGIN, self._ph.hash, secrets.token_urlsafe(16))
            encoded = self._dummy
            password = password + "\x00"  # never matches the dummy
        try:
            return await self._run(LOGIN, self._ph.verify, encoded, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, encoded: str) -> bool:
        try:
            return self._ph.check_needs_rehash(encoded)
        except InvalidHashError:
            return True

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put((-1, next(self._order), None))
        for thread in self._threads:
            thread.join()


def _settle(future: asyncio.Future, result, exc) -> None:
    if future.done():  # the request went away meanwhile
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
