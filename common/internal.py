"""Service-to-service authentication: trip_service and driver_service answer
only the gateway.

A shared secret, `INTERNAL_TOKEN` (random, at least 32 characters), made by
whatever makes the other credentials (the launcher, the tests' harness,
compose's init, the Kubernetes Secret). The gateway sends it on every call as
`Authorization: Bearer <token>`; the services compare it in constant time
and answer 401 otherwise on every route but /healthz, /readyz and /metrics
(the probes and the scrape, which hold no user data and which the network
policy lets only the kubelet, compose and the scraper reach). Why not mTLS:
see docs/security.md.
"""

from __future__ import annotations

import hmac
import logging

from aiohttp import web

from . import errors
from .settings import Settings

logger = logging.getLogger(__name__)

MIN_LENGTH = 32
HEADER = "Authorization"
# Open without the credential: the probes and the scrape (no user data; the
# deployment lets only the kubelet, compose and the scraper reach them).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class InternalTokenMissing(SystemExit):
    """The service cannot start without a usable INTERNAL_TOKEN."""


def check_token(token: str, service: str) -> bytes:
    """The token as bytes; stop with a clear message when unusable."""
    if len(token) < MIN_LENGTH:
        what = "is not set" if not token else f"has {len(token)} characters"
        raise InternalTokenMissing(
            f"{service}: INTERNAL_TOKEN {what}; it must be a random secret of at least "
            f"{MIN_LENGTH} characters shared with the gateway "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')."
        )
    return token.encode()


def auth_headers(settings: Settings) -> dict[str, str]:
    """What the gateway sends on every call to a service (nothing without a token)."""
    if not settings.internal_token:
        return {}
    return {HEADER: f"Bearer {settings.internal_token}"}


def require_internal_token(settings: Settings):
    """Middleware of trip_service and driver_service."""
    expected = b"Bearer " + check_token(settings.internal_token, settings.service)

    @web.middleware
    async def middleware(request: web.Request, handler):
        if request.path not in OPEN_PATHS:
            given = request.headers.get(HEADER, "").encode(errors="replace")
            if not hmac.compare_digest(given, expected):
                raise errors.Unauthorized(
                    "This service answers the gateway only: the internal credential is "
                    "missing or wrong."
                )
        return await handler(request)

    return middleware
