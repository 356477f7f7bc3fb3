"""The route table of the public API: each operation declares its method,
path, who may call it, and the pydantic models of its body, query and
responses. The same declaration validates requests at run time and produces
/openapi.json, so the document cannot drift from the code.

A wrapped handler receives a `Call`: the request, the authenticated caller
and the parsed body and query. Order of checks: authentication (401), the
per-token rate limit (429), the role (403), then the query and body (400,
413, 415, 422).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from common import errors
from common.web import read_body, validation_errors, parse_query

from .identity import Principal, token_digest
from .deps import HANDLER_DEPS, HandlerDeps

ANY_ROLE: tuple[str, ...] = ("rider", "driver", "ops")


@dataclass(slots=True)
class Response:
    """One documented answer of an operation."""

    description: str
    # A model, a tuple of models (any one of them), or None for no body.
    model: type[BaseModel] | tuple[type[BaseModel], ...] | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Header:
    name: str
    description: str
    # None: not constrained (a malformed value is ignored, not refused).
    max_length: int | None = 255
    pattern: str | None = None


@dataclass(slots=True)
class Operation:
    method: str
    path: str
    handler: Callable[["Call"], Awaitable[web.StreamResponse]]
    summary: str
    tags: tuple[str, ...]
    roles: tuple[str, ...] | None  # None: public
    responses: dict[int, Response]
    errors: tuple[int, ...] = ()
    body: type[BaseModel] | None = None
    body_optional: bool = False
    query: type[BaseModel] | None = None
    headers: tuple[Header, ...] = ()
    description: str = ""
    in_schema: bool = True
    # False: served by the base app (health, metrics), declared for the document only.
    installed: bool = True

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


@dataclass(slots=True)
class Call:
    request: web.Request
    deps: HandlerDeps
    principal: Principal | None
    body: Any = None
    query: Any = None

    @property
    def caller(self) -> Principal:
        assert self.principal is not None
        return self.principal

    def path(self, name: str) -> str:
        return self.request.match_info[name]


class Api:
    def __init__(self) -> None:
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        tags: tuple[str, ...] | str,
        roles: tuple[str, ...] | None,
        responses: dict[int, Response],
        errors: tuple[int, ...] = (),
        body: type[BaseModel] | None = None,
        body_optional: bool = False,
        query: type[BaseModel] | None = None,
        headers: tuple[Header, ...] = (),
        description: str = "",
        in_schema: bool = True,
        installed: bool = True,
    ):
        def register(handler):
            self.operations.append(
                Operation(
                    method=method,
                    path=path,
                    handler=handler,
                    summary=summary,
                    tags=(tags,) if isinstance(tags, str) else tags,
                    roles=roles,
                    responses=responses,
                    errors=errors,
                    body=body,
                    body_optional=body_optional,
                    query=query,
                    headers=headers,
                    description=description or (handler.__doc__ or "").strip(),
                    in_schema=in_schema,
                    installed=installed,
                )
            )
            return handler

        return register

    def include(self, other: "Api") -> None:
        """Add the operations of another table after these."""
        self.operations.extend(other.operations)

    def install(self, app: web.Application) -> None:
        for op in self.operations:
            if not op.installed:
                continue
            app.router.add_route(op.method, op.path, _wrap(op), name=op.operation_id)


_BEARER = re.compile(r"^\s*bearer\s+(\S+)\s*$", re.IGNORECASE)


def bearer_token(request: web.Request) -> str:
    header = request.headers.get("Authorization")
    challenge = {"WWW-Authenticate": 'Bearer realm="ridehail"'}
    if not header:
        raise errors.Unauthorized("A bearer token is required.", headers=challenge)
    m = _BEARER.match(header)
    if m is None:
        raise errors.Unauthorized("Use `Authorization: Bearer <token>`.", headers=challenge)
    return m.group(1)


async def authenticate(request: web.Request, deps: HandlerDeps) -> Principal:
    """The caller (401 if none) within their session's rate limit (429).

    One Redis step reads the session and takes tokens from its bucket; the
    gateway keeps the few it did not need for the session's next requests."""
    token = bearer_token(request)
    limiter = deps.limiter
    ticket = limiter.ask(token_digest(token))
    try:
        principal = await deps.identity.authenticate(
            token, *limiter.bucket(), take=ticket.take
        )
        if principal is None:
            raise errors.Unauthorized(
                "The token is unknown, expired or revoked.",
                headers={"WWW-Authenticate": 'Bearer realm="ridehail", error="invalid_token"'},
            )
        await limiter.settle(principal, ticket)
        return principal
    finally:
        limiter.release(ticket)


def _wrap(op: Operation):
    async def handler(request: web.Request) -> web.StreamResponse:
        deps = request.app[HANDLER_DEPS]
        principal = None
        if op.roles is not None:
            principal = await authenticate(request, deps)
            if principal.role not in op.roles:
                raise errors.Forbidden(
                    f"This route is for the role {' or '.join(op.roles)}; "
                    f"the token is of a {principal.role}."
                )
        call = Call(request, deps, principal)
        if op.query is not None:
            call.query = parse_query(request, op.query)
        if op.body is not None:
            call.body = await parse_json(
                request, op.body, optional=op.body_optional, context=_context(deps, principal)
            )
        return await op.handler(call)

    handler.__name__ = op.operation_id
    return handler


def _context(deps: HandlerDeps, principal: Principal | None) -> dict[str, Any]:
    regions = deps.settings.regions
    home = deps.settings.region(principal.region) if principal and principal.region else None
    return {
        "regions": [r.name for r in regions],
        "home_region": home,
        "max_trip_distance_m": deps.settings.max_trip_distance_m,
    }


async def parse_json(
    request: web.Request,
    model: type[BaseModel],
    *,
    optional: bool = False,
    context: dict[str, Any] | None = None,
) -> BaseModel:
    """The body validated by `model`: every invalid member reported at once."""
    data = await read_body(request, optional=optional)
    if not isinstance(data, dict):
        raise errors.Invalid(
            "The body must be a JSON object.",
            errors=[{"field": "body", "message": "must be an object"}],
        )
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise errors.Invalid(
            f"{exc.error_count()} invalid field(s).", errors=validation_errors(exc)
        ) from None
