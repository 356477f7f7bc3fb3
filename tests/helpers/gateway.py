"""Acting on the gateway as a client would: sign-ups, logins, headers."""

from __future__ import annotations

PASSWORD = "correct horse battery"
OPS_PASSWORD = "ops-gateway-tests-1"


def rider_body(user_name: str, **overrides) -> dict:
    body = {
        "user_name": user_name,
        "password": PASSWORD,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": f"{user_name}@example.com",
        "age": 36,
        "bio": "Analyst",
    }
    body.update(overrides)
    return body


async def sign_up_and_login(client, user_name: str) -> dict:
    resp = await client.post("/v1/riders", json=rider_body(user_name))
    assert resp.status == 201, await resp.text()
    resp = await client.post("/v1/sessions", json={"user_name": user_name, "password": PASSWORD})
    assert resp.status == 201, await resp.text()
    return await resp.json()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def ops_headers(client) -> dict:
    """An ops session's headers: /metrics and the details of /readyz are for the ops role."""
    resp = await client.post("/v1/sessions", json={"user_name": "ops", "password": OPS_PASSWORD})
    assert resp.status == 201, await resp.text()
    return bearer((await resp.json())["token"])
