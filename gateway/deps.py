"""The dependencies of the route handlers (each gets them as `call.deps`),
built once per process by the app's cleanup contexts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from .config import GatewaySettings

if TYPE_CHECKING:
    from .clientaddr import ClientAddress
    from .idempotency import Idempotency
    from .identity import Identity
    from .limits import LongPolls, SseSlots
    from .live import EventHub
    from .ratelimit import RateLimiter
    from .upstream import Upstreams


@dataclass(slots=True)
class HandlerDeps:
    settings: GatewaySettings
    redis: object
    identity: "Identity"
    limiter: "RateLimiter"
    idempotency: "Idempotency"
    upstreams: "Upstreams"
    hub: "EventHub"
    long_polls: "LongPolls"
    sse_slots: "SseSlots"
    client_addr: "ClientAddress"


HANDLER_DEPS = web.AppKey("handler_deps", HandlerDeps)
