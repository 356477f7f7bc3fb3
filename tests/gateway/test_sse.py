"""SSE edges through the real app: a client that goes away ends its stream
quietly (never a 500) and leaves no subscription behind."""

from __future__ import annotations

from dataclasses import replace

from gateway.deps import HANDLER_DEPS
from tests.helpers.gateway import bearer, ops_headers
from tests.waiting import eventually


async def test_a_client_that_goes_away_is_not_an_error(make_client, gw_settings):
    client = await make_client(replace(gw_settings, sse_ping_s=0.05))
    login = await client.post("/v1/sessions", json={"user_name": "ops", "password": "ops-gateway-tests-1"})
    token = (await login.json())["token"]
    hub = client.app[HANDLER_DEPS].hub
    resp = await client.get("/v1/ops/events", headers=bearer(token))
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    assert resp.headers["X-Request-ID"]
    await resp.content.readline()  # the first ping
    assert hub.client_count == 1
    resp.close()
    await eventually(lambda: hub.client_count == 0, timeout=5)

    text = await (await client.get("/metrics", headers=await ops_headers(client))).text()
    assert 'route="/v1/ops/events",service="gateway",status="500"' not in text
