"""Idempotency keys for POST /v1/trips.

A record per (rider, SHA-256 of the key) holds the fingerprint of the
validated body, the trip id reserved for the request and, once the first
attempt succeeded, its status and body for 24 hours. The first attempt holds a
lease; a concurrent duplicate waits for its outcome and replays it, so
concurrent duplicates create one trip. A failed attempt stores nothing; one
whose outcome is unknown (a timeout) keeps only the reserved trip id so the
retry repeats the creation with the same id.

Under `WAIT_REPLICAS=n` > 0 the stored answer is on `n` replicas (in their
AOF) before the trip's 201 is returned, else 503 (the trip itself is
confirmed by trip_service; the retry replays the stored answer). A replay
first confirms the record the same way: its first attempt may have been
answered that 503. The lease (acquire) is confirmed too before the trip is
attempted: it holds the reserved trip id, and a failover that lost it would
let the retry create a second trip. Not waited for: a forgotten attempt and
an unknown outcome, which answer no success (lost, the record is the
confirmed lease again, with the same trip id).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from common import errors
from common.scripts import require_replicas

from . import scripts as S
from .config import GatewaySettings
from .scripts import GatewayScripts

IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
POLL_S = 0.05


@dataclass(slots=True)
class Outcome:
    status: int
    body: bytes
    replayed: bool


def fingerprint(payload: Any) -> str:
    return hashlib.sha256(orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()


def check_key(value: str) -> str:
    if not _KEY.match(value):
        raise errors.Invalid(
            "The Idempotency-Key header is malformed.",
            errors=[
                {
                    "field": "Idempotency-Key",
                    "message": "must be 1-255 visible ASCII characters",
                }
            ],
        )
    return value


class Idempotency:
    def __init__(
        self, scripts: GatewayScripts, config: GatewaySettings, lease_s: float,
        wait_replicas: int = 0,
    ) -> None:
        self.scripts = scripts
        self.replicas = wait_replicas
        self.ttl_ms = config.idempotency_ttl_s * 1000
        self.wait_s = config.idempotency_wait_s
        self.lease_ms = int(lease_s * 1000)

    async def run(
        self,
        subject_id: str,
        key: str,
        payload: Any,
        new_trip_id: Callable[[], str],
        attempt: Callable[[str], Awaitable[tuple[int, bytes]]],
    ) -> Outcome:
        record = S.RecordKeys.of(subject_id, hashlib.sha256(key.encode()).hexdigest())
        fp = fingerprint(payload)
        owner = os.urandom(12).hex()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_s
        while True:
            reply = await self._acquire(record, S.IdemAcquireArgs(
                fingerprint=fp, owner=owner, lease_ms=self.lease_ms, ttl_ms=self.ttl_ms,
                trip_id=new_trip_id(),
            ))
            state = reply.state
            if state == "acquired":
                return await self._attempt(record, owner, reply.trip_id, attempt)
            if state == "done":
                if self.replicas > 0:
                    await self._confirm_replay(record)
                return Outcome(reply.status, reply.body.encode(), True)
            if state == "mismatch":
                raise errors.Invalid(
                    "This Idempotency-Key was used with a different body.",
                    errors=[
                        {
                            "field": "Idempotency-Key",
                            "message": "was already used with a different request body",
                        }
                    ],
                )
            # busy: the first attempt is still running; wait for its outcome.
            if loop.time() >= deadline:
                raise errors.Conflict(
                    "A request with this Idempotency-Key is still in progress.",
                    headers={"Retry-After": "1"},
                )
            await asyncio.sleep(POLL_S)

    async def _acquire(self, record: S.RecordKeys, args: S.IdemAcquireArgs) -> S.Acquired:
        """idem_acquire; under WAIT_REPLICAS a lease is on the replicas
        before the trip is attempted. A lease with its trip id lost in a
        failover would let the retry reserve another id and create a second
        trip. A lease the replicas did not confirm is given up (nothing was
        attempted under it), and the answer is 503."""
        if self.replicas <= 0:
            return await self.scripts.call(S.IDEM_ACQUIRE, record, args)
        reply, waited = await self.scripts.call_and_wait(
            S.IDEM_ACQUIRE, record, args, self.replicas)
        if reply.state == "acquired":
            try:
                require_replicas(waited, self.replicas)
            except errors.Unavailable:
                await asyncio.shield(self._finish(record, args.owner, "forget"))
                raise
        return reply

    async def _attempt(
        self,
        record: S.RecordKeys,
        owner: str,
        trip_id: str,
        attempt: Callable[[str], Awaitable[tuple[int, bytes]]],
    ) -> Outcome:
        try:
            status, body = await attempt(trip_id)
        except (errors.Timeout, errors.Unavailable, asyncio.CancelledError):
            await asyncio.shield(self._finish(record, owner, "unknown"))
            raise
        except BaseException:
            await asyncio.shield(self._finish(record, owner, "forget"))
            raise
        if 200 <= status < 300:
            await self._finish(record, owner, "done", status, body)
        else:
            await self._finish(record, owner, "forget")
        return Outcome(status, body, False)

    async def _finish(
        self, record: S.RecordKeys, owner: str, outcome: str, status: int = 0,
        body: bytes = b"",
    ) -> None:
        args = S.IdemFinishArgs(owner=owner, outcome=outcome, status=status, body=body,
                                ttl_ms=self.ttl_ms)
        if self.replicas <= 0 or outcome != "done":
            # 'forget' and 'unknown' go with an error answer: nothing to confirm.
            await self.scripts.call(S.IDEM_FINISH, record, args)
            return
        # The answer about to be returned is stored on the replicas first.
        finished, waited = await self.scripts.call_and_wait(
            S.IDEM_FINISH, record, args, self.replicas
        )
        if finished:  # 0: the lease was taken over; nothing written here
            require_replicas(waited, self.replicas)

    async def _confirm_replay(self, record: S.RecordKeys) -> None:
        """The record rewritten unchanged with the wait behind it: 503 unless
        the replicas have it (and so the first attempt's answer)."""
        touched, waited = await self.scripts.call_and_wait(
            S.IDEM_TOUCH_SCRIPT, record, S.NoArgs(), self.replicas
        )
        if not touched:
            # Expired in between: the wait would say nothing about it.
            raise errors.Unavailable(
                "cannot confirm the stored answer on replicas", headers={"Retry-After": "1"}
            )
        require_replicas(waited, self.replicas)
