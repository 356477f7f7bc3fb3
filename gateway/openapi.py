"""/openapi.json, generated from the route table and its pydantic models."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema


from . import models
from .api import ANY_ROLE, Api, Operation
from .config import GatewaySettings

REF = "#/components/schemas/{model}"
PROBLEM = "application/problem+json"

ERROR_TEXT = {
    400: "The body is not JSON, or a query parameter has the wrong type.",
    401: "No token, an unknown, expired or revoked token, or bad credentials.",
    403: "A valid token of the wrong role.",
    404: "No such object, or an object that belongs to someone else.",
    409: "The object's state does not allow it.",
    413: "The body is larger than 64 KiB.",
    415: "The body is not `application/json`.",
    422: "Well-formed JSON that fails validation, or a query parameter out of range; "
    "`errors` lists every field.",
    429: "Rate limited; `Retry-After` says when to retry.",
    503: "A dependency is down, or the gateway is overloaded (`/problems/overloaded`, answered at once, nothing done); `Retry-After` set.",
    504: "A dependency did not answer in time.",
}
RETRY_STATUSES = (429, 503, 504)

_PATH_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
PATH_PARAM_TEXT = {
    "id": "A trip id (`trp_<region>_<ULID>`).",
    "trip_id": "A trip id (`trp_<region>_<ULID>`).",
    "path": "A file of the dashboard.",
}


def _models_of(op: Operation) -> list[tuple[type[BaseModel], str]]:
    found: list[tuple[type[BaseModel], str]] = []
    if op.body is not None:
        found.append((op.body, "validation"))
    for response in op.responses.values():
        if response.model is None:
            continue
        group = response.model if isinstance(response.model, tuple) else (response.model,)
        found.extend((m, "serialization") for m in group)
    return found


def error_statuses(op: Operation) -> list[int]:
    statuses = set(op.errors)
    if op.body is not None:
        statuses |= {400, 413, 415, 422}
    if op.query is not None:
        statuses |= {400, 422}
    if op.roles is not None:
        statuses |= {401, 429}
        if set(op.roles) != set(ANY_ROLE):
            statuses.add(403)
    return sorted(statuses)


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        prop.pop("title", None)
        description = model.model_fields[name].description
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": prop,
        }
        if description:
            param["description"] = description
        params.append(param)
    return params


def build(api: Api, settings: GatewaySettings) -> dict[str, Any]:
    wanted: list[tuple[type[BaseModel], str]] = [
        (models.Problem, "serialization"),
        (models.SseMessage, "serialization"),
        (models.EventEnvelope, "serialization"),
    ]
    for op in api.operations:
        if op.in_schema:
            wanted.extend(m for m in _models_of(op) if m not in wanted)
    refs, defs = models_json_schema(wanted, ref_template=REF)

    def ref(model: type[BaseModel], mode: str) -> dict[str, Any]:
        return refs[(model, mode)]

    paths: dict[str, dict[str, Any]] = {}
    for op in api.operations:
        if not op.in_schema:
            continue
        path = _PATH_PARAM.sub(r"{\1}", op.path)
        parameters: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": PATH_PARAM_TEXT.get(name, name),
            }
            for name in _PATH_PARAM.findall(op.path)
        ]
        if op.query is not None:
            parameters.extend(_query_parameters(op.query))
        for header in op.headers:
            header_schema: dict[str, Any] = {"type": "string"}
            if header.max_length is not None:
                header_schema["maxLength"] = header.max_length
            if header.pattern is not None:
                header_schema["pattern"] = header.pattern
            parameters.append(
                {
                    "name": header.name,
                    "in": "header",
                    "required": False,
                    "description": header.description,
                    "schema": header_schema,
                }
            )
        responses: dict[str, Any] = {}
        for status, response in sorted(op.responses.items()):
            entry: dict[str, Any] = {"description": response.description}
            if response.model is not None:
                group = response.model if isinstance(response.model, tuple) else (response.model,)
                schemas = [ref(m, "serialization") for m in group]
                schema = schemas[0] if len(schemas) == 1 else {"oneOf": schemas}
                entry["content"] = {response.content_type: {"schema": schema}}
            elif response.content_type and response.content_type != "application/json":
                entry["content"] = {response.content_type: {"schema": {"type": "string"}}}
            if response.headers:
                entry["headers"] = {
                    name: {"description": text, "schema": {"type": "string"}}
                    for name, text in response.headers.items()
                }
            responses[str(status)] = entry
        for status in error_statuses(op):
            entry = {
                "description": ERROR_TEXT.get(status, "Error."),
                "content": {PROBLEM: {"schema": ref(models.Problem, "serialization")}},
            }
            if status in RETRY_STATUSES:
                entry["headers"] = {
                    "Retry-After": {
                        "description": "Seconds to wait before retrying.",
                        "schema": {"type": "integer"},
                    }
                }
            responses[str(status)] = entry
        operation: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": list(op.tags),
            "responses": responses,
            "security": [] if op.roles is None else [{"bearer": []}],
        }
        if op.roles is not None:
            roles = ", ".join(op.roles)
            extra = f"Roles: {roles}."
            operation["description"] = f"{op.description}\n\n{extra}".strip()
        elif op.description:
            operation["description"] = op.description
        if parameters:
            operation["parameters"] = parameters
        if op.body is not None:
            operation["requestBody"] = {
                "required": not op.body_optional,
                "content": {"application/json": {"schema": ref(op.body, "validation")}},
            }
        paths.setdefault(path, {})[op.method.lower()] = operation

    regions = ", ".join(
        f"`{r.name}` (lat {r.min_lat}..{r.max_lat}, lon {r.min_lon}..{r.max_lon})"
        for r in settings.regions
    )
    _describe_service_area(paths, defs.get("$defs", {}), settings)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Ride-hailing public API",
            "version": "1.0.0",
            "description": (
                "The gateway: the only public entry of the system. Guide: docs/api.md. "
                "Errors are `application/problem+json` (RFC 9457) with `errors: [{field, "
                "message}]` on 422. Every response carries `X-Request-ID`; a W3C "
                "`traceparent` is continued into the events a request causes. "
                f"Service area: {regions}. Times are ISO 8601 UTC with milliseconds; money "
                "is `{amount: \"12.40\", currency: \"USD\"}`. Unknown body members are "
                "ignored; fields the server owns (ids, status, fare, driver) cannot be set. "
                f"Rate limit per session token: {settings.rate_limit_per_token:g} requests "
                "per second, bursts of twice that (0 = off)."
            ),
        },
        "servers": [{"url": "/"}],
        "tags": [
            {"name": "accounts", "description": "Sign-up, sessions, the caller's profile."},
            {"name": "rider", "description": "Estimates, trip requests, ratings."},
            {"name": "trips", "description": "Trips of riders and drivers; live events."},
            {"name": "driver", "description": "Status, location, offers, trip progress."},
            {"name": "operations", "description": "Health, metrics, the ops dashboard."},
        ],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A session token from POST /v1/sessions.",
                }
            },
        },
    }


# Where a request is checked against the caller's region, the document says
# so: points are bounded by the service area (exact with one region; with
# several, the caller's own region narrows it further), and `region` is one
# of the configured names. So a request that the document calls valid is one
# the gateway accepts.
AREA_POINTS = {"TripCreate": ("pickup",), "EstimateRequest": ("pickup",)}
AREA_COORDS = ("LocationUpdate",)
AREA_QUERIES = (("/v1/drivers/nearby", "get"),)
REGION_FIELDS = ("RiderSignup", "DriverSignup")
CURSOR_QUERIES = (("/v1/trips", "get"),)
CURSOR_TEXT = (
    "The `next_cursor` of the previous page, as it was given (opaque). "
    "Anything else is a 422."
)


def _bounds(settings: GatewaySettings) -> dict[str, dict[str, float]]:
    regions = settings.regions
    return {
        "lat": {"minimum": min(r.min_lat for r in regions),
                "maximum": max(r.max_lat for r in regions)},
        "lon": {"minimum": min(r.min_lon for r in regions),
                "maximum": max(r.max_lon for r in regions)},
    }


def _area_text(settings: GatewaySettings) -> str:
    return (
        "Inside the caller's home region (service area: "
        + ", ".join(
            f"`{r.name}` lat {r.min_lat}..{r.max_lat}, lon {r.min_lon}..{r.max_lon}"
            for r in settings.regions
        )
        + "); a point outside it is a 422."
    )


def refine_request_schemas(schemas: dict[str, Any], settings: GatewaySettings) -> dict[str, Any]:
    """The request models' schemas (by name, changed in place) with what the
    gateway checks against its settings: service-area bounds and region names.
    Adds the `ServiceAreaPoint` schema they refer to. Returns `schemas`."""
    bounds = _bounds(settings)
    names = [r.name for r in settings.regions]
    area_text = _area_text(settings)
    schemas["ServiceAreaPoint"] = {
        "title": "ServiceAreaPoint",
        "description": area_text,
        "type": "object",
        "properties": {
            "lat": {"type": "number", **bounds["lat"], "examples": [37.7749]},
            "lon": {"type": "number", **bounds["lon"], "examples": [-122.4194]},
        },
        "required": ["lat", "lon"],
    }
    for model, fields in AREA_POINTS.items():
        props = schemas.get(model, {}).get("properties", {})
        for name in fields:
            if name in props:
                props[name] = {"$ref": REF.format(model="ServiceAreaPoint")}
    for model in AREA_COORDS:
        props = schemas.get(model, {}).get("properties", {})
        for coord in ("lat", "lon"):
            if coord in props:
                props[coord].update(bounds[coord])
                props[coord]["description"] = area_text
    for model in REGION_FIELDS:
        region = schemas.get(model, {}).get("properties", {}).get("region")
        if region is not None:
            region["anyOf"] = [{"type": "string", "enum": names}, {"type": "null"}]
    return schemas


def _describe_service_area(
    paths: dict[str, Any], schemas: dict[str, Any], settings: GatewaySettings
) -> None:
    refine_request_schemas(schemas, settings)
    bounds = _bounds(settings)
    area_text = _area_text(settings)
    for path, method in AREA_QUERIES:
        for param in paths.get(path, {}).get(method, {}).get("parameters", []):
            if param["name"] in bounds:
                param["schema"].update(bounds[param["name"]])
                param["description"] = area_text
    for path, method in CURSOR_QUERIES:
        for param in paths.get(path, {}).get(method, {}).get("parameters", []):
            if param["name"] == "cursor":
                param["description"] = CURSOR_TEXT
