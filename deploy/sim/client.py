"""The HTTP client: what a mobile app's networking layer does, and the run's counters."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from tenacity import RetryCallState

from common.retry import NO_ANSWER, RETRY_STATUSES, retrying


@dataclass
class Stats:
    counts: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    to_assigned_s: list[float] = field(default_factory=list)
    requests: int = 0

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def assigned_after(self, seconds: float) -> None:
        self.to_assigned_s.append(seconds)
        del self.to_assigned_s[:-500]


@dataclass
class Reply:
    status: int  # 0: no answer (connection error or timeout)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def describe(self) -> str:
        if self.status == 0:
            return f"no answer ({self.body})"
        if isinstance(self.body, dict) and self.body.get("title"):
            fields = "; ".join(f"{e.get('field')}: {e.get('message')}"
                               for e in self.body.get("errors") or [])
            return (f"{self.status} {self.body.get('title')}: {self.body.get('detail', '')}"
                    + (f" ({fields})" if fields else ""))
        return str(self.status)


class Api:
    """A thin client of the gateway with retries, shared by every user in the city."""

    def __init__(self, session: aiohttp.ClientSession, base: str, stats: Stats) -> None:
        self.session = session
        self.base = base
        self.stats = stats

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        params: dict | None = None,
        headers: dict | None = None,
        timeout_s: float = 10.0,
        attempts: int = 6,
    ) -> Reply:
        """One call, tried again on no answer or a "later" (common.retry); the
        last reply, status 0 when there was none."""
        hdrs = {"X-Request-ID": uuid.uuid4().hex[:16], **(headers or {})}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        policy = retrying(attempts=attempts, on_retry=self._retrying)
        reply = await policy(self._once, method, path, json_body, params, hdrs, timeout)
        if reply.status >= 400 and reply.status not in RETRY_STATUSES:
            self.stats.statuses[reply.status] += 1
        return reply

    async def _once(self, method: str, path: str, json_body: Any, params: dict | None,
                    headers: dict, timeout: aiohttp.ClientTimeout) -> Reply:
        self.stats.requests += 1
        try:
            async with self.session.request(
                method, self.base + path, json=json_body, params=params, headers=headers,
                timeout=timeout,
            ) as resp:
                raw = await resp.read()
                body: Any = None
                if raw:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = raw[:200].decode(errors="replace")
                reply = Reply(resp.status, body, dict(resp.headers))
        except NO_ANSWER as exc:
            reply = Reply(0, repr(exc)[:200])
        if not reply.status or reply.status in RETRY_STATUSES:
            self.stats.statuses[reply.status or "no answer"] += 1
        return reply

    def _retrying(self, retry_state: RetryCallState) -> None:
        self.stats.add("retries")

    async def events(
        self, path: str, token: str, last_event_id: str | None, idle_timeout_s: float
    ) -> AsyncIterator[tuple[str | None, str, Any]]:
        """One SSE connection: yields (id, event, data) until the server closes it.

        Raises ConnectionError with the status when the answer is not a stream.
        """
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=idle_timeout_s)
        self.stats.requests += 1
        async with self.session.get(self.base + path, headers=headers, timeout=timeout) as resp:
            if resp.status != 200:
                self.stats.statuses[resp.status] += 1
                raise ConnectionError(resp.status, resp.headers.get("Retry-After"))
            event_id, event_type, data = None, "message", []
            async for raw in resp.content:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not line:
                    if data:
                        text = "\n".join(data)
                        try:
                            payload: Any = json.loads(text)
                        except ValueError:
                            payload = text
                        yield event_id, event_type, payload
                    event_type, data = "message", []
                    continue
                if line.startswith(":"):
                    continue  # a keep-alive comment
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "id":
                    event_id = value
                elif name == "event":
                    event_type = value
                elif name == "data":
                    data.append(value)
