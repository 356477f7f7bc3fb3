"""Calls on a running system over HTTP, as the demo's clients make them."""

from __future__ import annotations

import json
import urllib.request

from tests.client import OPS_PASSWORD, OPS_USER

# The ops account every test system is started with (tests/harness.py).
OPS = {"user_name": OPS_USER, "password": OPS_PASSWORD}


def http_json(method: str, url: str, body: dict | None = None, token: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as resp:
        raw = resp.read()
        return resp.status, (json.loads(raw) if raw else None)


def ops_token(gateway_url: str, password: str = OPS["password"]) -> str:
    credentials = {"user_name": OPS["user_name"], "password": password}
    status, body = http_json("POST", f"{gateway_url}/v1/sessions", credentials)
    assert status == 201 and body["role"] == "ops"
    return body["token"]
