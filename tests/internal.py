"""The service-to-service credential (INTERNAL_TOKEN) of every app and
process the tests start, and the header a test sends to call a service
directly, as the gateway does."""

from __future__ import annotations

import secrets

INTERNAL_TOKEN = secrets.token_urlsafe(32)


def internal_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {INTERNAL_TOKEN}"}
