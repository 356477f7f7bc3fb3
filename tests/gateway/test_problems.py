"""One problem vocabulary (docs/api.md): every `type` is one of ours, never
about:blank; details and field messages are sentences a person can act on."""

from __future__ import annotations

from tests.helpers.gateway import bearer, rider_body, sign_up_and_login


async def problem(resp, status: int) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    assert body["type"].startswith("/problems/"), body
    return body


async def test_an_unknown_route_is_a_404_of_our_type(client):
    body = await problem(await client.get("/v1/nothing-here"), 404)
    assert body["type"] == "/problems/not-found" and body["detail"] == "No such route."


async def test_a_method_the_route_lacks_is_a_405_with_allow(client):
    resp = await client.delete("/v1/riders")
    body = await problem(resp, 405)
    assert body["type"] == "/problems/method-not-allowed"
    assert "POST" in resp.headers["Allow"] and "POST" in body["detail"]


async def test_a_body_too_large_is_a_413_of_our_type(client):
    resp = await client.post(
        "/v1/riders", data=b'{"bio": "' + b"x" * (65 * 1024) + b'"}',
        headers={"Content-Type": "application/json"},
    )
    body = await problem(resp, 413)
    assert body["type"] == "/problems/payload-too-large"


async def test_field_messages_are_sentences_not_patterns_or_library_wording(client):
    resp = await client.post(
        "/v1/riders",
        json=rider_body("Ada", age=0, email="ada@example.com", first_name=""),
    )
    body = await problem(resp, 422)
    by_field = {e["field"]: e["message"] for e in body["errors"]}
    assert by_field["user_name"] == (
        "may hold only lower-case letters, digits, '_', '.' and '-'"
    ), by_field
    assert by_field["age"] == "must be more than 0", by_field
    assert by_field["first_name"].startswith("must be 1 to 64 characters long"), by_field
    for message in by_field.values():
        assert "should" not in message and "^" not in message, by_field


async def test_a_missing_field_and_a_wrong_choice_say_what_to_send(client):
    session = await sign_up_and_login(client, "chooser")
    resp = await client.post(
        "/v1/trips", json={"pickup": {"lat": 37.77, "lon": -122.42}, "product": "limo"},
        headers=bearer(session["token"]),
    )
    body = await problem(resp, 422)
    by_field = {e["field"]: e["message"] for e in body["errors"]}
    assert by_field["dropoff"] == "is required"
    assert by_field["product"] == "must be one of 'standard', 'xl' or 'premium'"
