"""Request ids and W3C trace context, carried in context variables so that
logs, outgoing calls and events of one request share them."""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="")
trace_id_var: ContextVar[str] = ContextVar("trace_id", default="")
span_id_var: ContextVar[str] = ContextVar("span_id", default="")

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


def new_trace_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def parse_traceparent(value: str | None) -> tuple[str, str] | None:
    """Return (trace_id, parent_span_id) of a valid header, else None."""
    if not value:
        return None
    m = _TRACEPARENT.match(value.strip().lower())
    if m is None or m.group(1) == "ff":
        return None
    trace_id, span_id = m.group(2), m.group(3)
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return trace_id, span_id


def traceparent() -> str:
    """The header to send on an outgoing call from the current context."""
    trace_id = trace_id_var.get() or new_trace_id()
    return f"00-{trace_id}-{span_id_var.get() or new_span_id()}-01"


def clean_request_id(value: str | None) -> str | None:
    if value and _REQUEST_ID.match(value):
        return value
    return None


def outgoing_headers() -> dict[str, str]:
    headers = {"traceparent": traceparent()}
    rid = request_id_var.get()
    if rid:
        headers["X-Request-ID"] = rid
    return headers
