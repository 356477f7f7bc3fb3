"""Server-sent event responses with the gateway's defaults."""

from __future__ import annotations

from aiohttp_sse import sse_response

from common.tracing import request_id_var

from .api import Call

# A client that does not take a message within this time is cut off, so a
# stalled connection cannot hold its handler (and its queue) forever.
SEND_TIMEOUT_S = 10.0
# A client that went away, or stalled past the send timeout: its stream just
# ends (not a server error).
CLIENT_GONE = (ConnectionResetError, ConnectionError, TimeoutError)


def open_stream(call: Call):
    headers = {"X-Request-ID": request_id_var.get()} if request_id_var.get() else None
    return sse_response(
        call.request,
        headers=headers,
        ping_interval=call.deps.settings.sse_ping_s,
        send_timeout=SEND_TIMEOUT_S,
    )
