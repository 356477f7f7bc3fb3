"""The one test client of the public API (the gateway), used by tests/e2e,
tests/proofs and tests/security: requests as a mobile app makes them, their
replies, the sign-up bodies, and a reader of server-sent events.

What a call without an HTTP answer does (connection refused or reset, the
client's own timeout) is the client's `report_failures`: False raises, as a
test of a system that must be up wants; True returns a Reply with status 0 and
the error, as a proof that counts failures under faults wants.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from common.retry import retrying, transient

PASSWORD = "test-password-123"
# The ops account tests/harness.py gives every system it starts.
OPS_USER = "ops"
OPS_PASSWORD = "ops-password-for-tests"


@dataclass
class Reply:
    status: int  # 0: no answer (only from a client that reports failures)
    headers: Any = None
    body: Any = None  # the parsed JSON, when the reply is JSON
    text: str = ""
    error: str = ""  # why there was no answer (status 0)
    elapsed: float = 0.0  # seconds from the request to the whole reply (or the failure)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def __repr__(self) -> str:
        return f"<{self.status} {self.error or self.text[:300]}>"


@dataclass
class ApiClient:
    """A mobile-style client of the public API."""

    session: aiohttp.ClientSession
    base: str
    token: str | None = None
    subject_id: str | None = None
    user_name: str | None = None
    role: str | None = None
    profile: dict = field(default_factory=dict)
    timeout: float = 30.0  # seconds per call, unless the call says otherwise
    # True: a call without an answer is Reply(status=0, error=...) and a JSON
    # body that does not parse is body None; False: both raise.
    report_failures: bool = False

    def headers(self, extra: dict | None = None, token: str | None = None) -> dict:
        """`extra` with the bearer token (`token`, else the client's; "" for none)."""
        h = dict(extra or {})
        tok = token if token is not None else self.token
        if tok:
            h["Authorization"] = f"Bearer {tok}"
        return h

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        headers: dict | None = None,
        params: dict | None = None,
        data: Any = None,
        token: str | None = None,
        timeout: float | None = None,
    ) -> Reply:
        started = time.monotonic()
        try:
            async with self.session.request(
                method,
                self.base + path,
                json=json,
                data=data,
                params=params,
                headers=self.headers(headers, token),
                timeout=aiohttp.ClientTimeout(total=self.timeout if timeout is None else timeout),
            ) as resp:
                raw = await resp.read()
                body = None
                if raw and "json" in (resp.content_type or ""):
                    try:
                        body = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        if not self.report_failures:
                            raise
                return Reply(resp.status, resp.headers, body, raw.decode(errors="replace"),
                             elapsed=time.monotonic() - started)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            if not self.report_failures:
                raise
            return Reply(0, error=f"{type(exc).__name__}: {exc}",
                         elapsed=time.monotonic() - started)

    async def call_retried(self, method: str, path: str, json: Any = None, *,
                           retry_on=transient, attempts: int = 10, **kw) -> list[Reply]:
        """The call, repeated as a client repeats it while `retry_on(reply)`
        (by default an answer that says "later"), after the server's
        Retry-After or a backoff (common.retry): every reply, the last one last."""
        replies: list[Reply] = []

        async def once() -> Reply:
            replies.append(await self.call(method, path, json, **kw))
            return replies[-1]

        await retrying(attempts=attempts, retry_on=retry_on)(once)
        return replies

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def post(self, path: str, json: Any = None, **kw):
        return self.call("POST", path, json, **kw)

    async def login(self, user_name: str, password: str = PASSWORD) -> Reply:
        """Log in and keep the session; a login that is not a 201 fails the
        test (to see a refused one, post /v1/sessions)."""
        r = await self.post("/v1/sessions", {"user_name": user_name, "password": password})
        assert r.status == 201, r
        self.token = r.body["token"]
        self.subject_id = r.body["subject_id"]
        self.role = r.body["role"]
        self.user_name = user_name
        return r


def rider_body(user_name: str, **over) -> dict:
    body = {
        "user_name": user_name,
        "password": PASSWORD,
        "first_name": "Rita",
        "last_name": "Rider",
        "email": f"{user_name}@example.com",
        "age": 30,
    }
    body.update(over)
    return body


def driver_body(user_name: str, product: str = "standard", **over) -> dict:
    # The last name carries the user name, so a driver document in Redis
    # can be traced back to the sign-up that made it (tests/proofs/checker.py).
    body = {
        "user_name": user_name,
        "password": PASSWORD,
        "first_name": "Dan",
        "last_name": user_name,
        "email": f"{user_name}@example.com",
        "car": {"make": "Toyota", "model": "Prius", "color": "blue", "plate": "7ABC123",
                "seats": 4},
        "product": product,
    }
    body.update(over)
    return body


# --- server-sent events ---------------------------------------------------------
class SseReader:
    """Messages of an open SSE response, one at a time ({id, event, data}
    with data parsed as JSON; None when the stream ends)."""

    def __init__(self, resp: aiohttp.ClientResponse) -> None:
        self.resp = resp

    async def next(self) -> dict | None:
        current: dict[str, Any] = {}
        async for raw in self.resp.content:
            line = raw.decode().rstrip("\r\n")
            if line == "":
                if "data" in current:
                    current["data"] = orjson.loads(current["data"])
                    return current
                current = {}
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data" and "data" in current:
                current["data"] += "\n" + value
            else:
                current[name] = value
        return None


async def read_sse(
    session: aiohttp.ClientSession,
    url: str,
    token: str,
    *,
    last_event_id: str | None = None,
    stop_after: int | None = None,
    timeout: float = 20,
) -> tuple[int, list[dict], bool]:
    """Read an SSE stream: (status, messages [{id, event, data}], ended by the server)."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    messages: list[dict] = []
    async with session.get(
        url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
    ) as resp:
        if resp.status != 200:
            return resp.status, [], True
        assert resp.content_type == "text/event-stream"
        stream = SseReader(resp)
        while (message := await stream.next()) is not None:
            messages.append(message)
            if stop_after is not None and len(messages) >= stop_after:
                return 200, messages, False
        return 200, messages, True
