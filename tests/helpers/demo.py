"""Calls on a running system over HTTP, as the demo's clients make them."""

from __future__ import annotations

from deploy.processes import http_json as call_json
from tests.client import OPS_PASSWORD, OPS_USER

# The ops account every test system is started with (tests/harness.py).
OPS = {"user_name": OPS_USER, "password": OPS_PASSWORD}


def http_json(method: str, url: str, body: dict | None = None, token: str | None = None):
    return call_json(method, url, body, token, timeout=10)


def ops_token(gateway_url: str, password: str = OPS["password"]) -> str:
    credentials = {"user_name": OPS["user_name"], "password": password}
    status, body = http_json("POST", f"{gateway_url}/v1/sessions", credentials)
    assert status == 201 and body["role"] == "ops"
    return body["token"]
