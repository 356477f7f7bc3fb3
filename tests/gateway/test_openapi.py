"""/openapi.json is generated from the route table and the pydantic models
that validate requests, so it cannot drift from what the app serves."""

from __future__ import annotations

import importlib
import pkgutil
import re

from aiohttp import web

from gateway import models
from gateway.openapi import refine_request_schemas
import gateway.routes
from gateway.api import Api
from gateway.routes import route_table

API_ROUTES = [
    ("POST", "/v1/riders"), ("POST", "/v1/drivers"), ("POST", "/v1/sessions"),
    ("DELETE", "/v1/sessions/current"), ("GET", "/v1/me"),
    ("POST", "/v1/estimates"), ("POST", "/v1/trips"), ("GET", "/v1/trips/{id}"),
    ("GET", "/v1/trips"), ("POST", "/v1/trips/{id}/cancel"), ("POST", "/v1/trips/{id}/rating"),
    ("GET", "/v1/trips/{id}/events"), ("GET", "/v1/trips/{id}/timeline"),
    ("GET", "/v1/drivers/nearby"),
    ("POST", "/v1/driver/status"), ("PUT", "/v1/driver/location"),
    ("GET", "/v1/driver/offers/next"), ("POST", "/v1/driver/offers/{trip_id}/accept"),
    ("POST", "/v1/driver/offers/{trip_id}/decline"), ("POST", "/v1/trips/{id}/arrive"),
    ("POST", "/v1/trips/{id}/start"), ("POST", "/v1/trips/{id}/complete"),
    ("GET", "/v1/driver/trip"),
    ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/"), ("GET", "/v1/ops/overview"), ("GET", "/v1/ops/events"),
    ("GET", "/v1/ops/topology"), ("GET", "/v1/vocabulary"),
]


async def fetch(client) -> dict:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    return await resp.json()


async def test_every_route_of_the_contract_is_documented(client):
    doc = await fetch(client)
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    for route in API_ROUTES:
        assert route in documented, route


async def test_every_served_route_is_documented_and_nothing_else(client):
    doc = await fetch(client)
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = set()
    for route in client.app.router.routes():
        if route.method == "HEAD":
            continue
        path = re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", route.resource.canonical)
        served.add((route.method, path))
    assert served == documented


async def test_request_schemas_are_the_validating_models(client, gw_settings):
    doc = await fetch(client)
    schemas = doc["components"]["schemas"]
    for op in route_table().operations:
        if op.body is None:
            continue
        path = re.sub(r"\{(\w+)(?::[^}]*)?\}", r"{\1}", op.path)
        ref = doc["paths"][path][op.method.lower()]["requestBody"]["content"]["application/json"][
            "schema"
        ]["$ref"]
        name = ref.rsplit("/", 1)[1]
        own = op.body.model_json_schema(ref_template="#/components/schemas/{model}")
        own.pop("$defs", None)
        # With what the gateway checks against its settings (service area, regions).
        own = refine_request_schemas({name: own}, gw_settings)[name]
        assert schemas[name] == own, name


async def test_errors_security_and_sse_are_described(client):
    doc = await fetch(client)
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    create = doc["paths"]["/v1/trips"]["post"]
    assert create["security"] == [{"bearer": []}]
    for status in ("400", "401", "403", "409", "413", "415", "422", "429", "503", "504"):
        content = create["responses"][status]["content"]
        assert content["application/problem+json"]["schema"]["$ref"].endswith("/Problem")
    assert "Retry-After" in create["responses"]["429"]["headers"]
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in create["parameters"])
    assert doc["paths"]["/v1/sessions"]["post"]["security"] == []
    events = doc["paths"]["/v1/trips/{id}/events"]["get"]["responses"]["200"]["content"]
    assert events["text/event-stream"]["schema"]["$ref"].endswith("/SseMessage")
    sse = doc["components"]["schemas"]["SseMessage"]
    assert set(sse["required"]) == {"id", "event", "data"}
    # An SSE `data:` line is text: a string holding the envelope as JSON.
    data = sse["properties"]["data"]
    assert data["type"] == "string" and data["contentMediaType"] == "application/json"
    envelope = doc["components"]["schemas"][data["contentSchema"]["$ref"].rsplit("/", 1)[1]]
    assert {"id", "type", "version", "occurred_at", "producer", "trace_id", "data"} <= set(
        envelope["required"]
    )
    trip = doc["components"]["schemas"]["Trip"]
    assert {"missing", "driver", "queue_position"} <= set(trip["properties"])
    listing = doc["paths"]["/v1/trips"]["get"]
    limit = next(p for p in listing["parameters"] if p["name"] == "limit")
    assert limit["schema"]["minimum"] == 1 and limit["schema"]["maximum"] == 100


def test_the_models_reject_what_the_contract_rejects():
    point = {"lat": 37.77, "lon": -122.42}
    ok = models.TripCreate.model_validate({"pickup": point, "dropoff": point, "product": "xl"})
    assert ok.product == "xl"
    bad = models.RatingRequest.model_fields["stars"].metadata
    assert any(getattr(m, "ge", None) == 1 for m in bad)


async def test_the_document_is_served_by_every_app_alike(client):
    assert isinstance(client.app, web.Application)
    first = await (await client.get("/openapi.json")).read()
    second = await (await client.get("/openapi.json")).read()
    assert first == second


async def test_docs_api_md_lists_every_route_the_gateway_serves(client):
    """docs/api.md's "Every route" table names each operation of the document,
    and no route that is not served."""
    doc = await fetch(client)
    served = {f"{m.upper()} {p}" for p, ops in doc["paths"].items() for m in ops}
    listed = routes_in_api_md()
    assert served - listed == set(), "routes missing from docs/api.md"
    assert listed - served == set(), "docs/api.md lists routes the gateway does not serve"


def routes_in_api_md() -> set[str]:
    """The `METHOD /path` of each row of docs/api.md's "Every route" table."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    table = text.split("\n## Every route\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z]+ /[^`]*)` \|", table, flags=re.M))


def test_every_route_module_is_set_up():
    """Routes are served when `setup_routes` lists their module, not when
    something imports it: a module of gateway/routes with a route table that
    RESOURCES leaves out would be neither served nor documented."""
    tables = []
    for info in pkgutil.iter_modules(gateway.routes.__path__):
        module = importlib.import_module(f"gateway.routes.{info.name}")
        if isinstance(getattr(module, "api", None), Api):
            tables.append(module)
            assert module in gateway.routes.RESOURCES, f"gateway/routes/{info.name}.py"
    assert len(tables) == len(gateway.routes.RESOURCES)
    # One table per call: building the app twice serves every route once.
    ops = [(op.method, op.path) for op in route_table().operations]
    assert len(ops) == len(set(ops)) == sum(len(m.api.operations) for m in tables)
