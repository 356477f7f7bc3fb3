"""The HTTP edge shared by every process: problem+json errors, request ids and
trace context, metrics, body limits, JSON via orjson, health and readiness."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError
from redis.exceptions import ClusterDownError, MasterDownError, RedisClusterException, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import errors, metrics
from .admission import Admission
from .settings import Settings
from .tracing import (
    clean_request_id,
    new_span_id,
    new_trace_id,
    parse_traceparent,
    request_id_var,
    span_id_var,
    trace_id_var,
)

logger = logging.getLogger(__name__)

# The database cannot answer now: 503 with Retry-After. On Redis Cluster an
# unreachable cluster is a RedisClusterException (not a RedisError), and a
# cluster still converging answers CLUSTERDOWN or TRYAGAIN.
REDIS_UNAVAILABLE = (
    RedisConnectionError, ConnectionRefusedError, RedisClusterException, ClusterDownError,
    MasterDownError, TryAgainError,
)

MAX_BODY = 64 * 1024
# The status that metrics record for a request whose client left before the
# answer (nginx's convention); nothing is sent.
CLIENT_CLOSED = 499
MAX_CACHED_METRIC_CHILDREN = 1024
PROBLEM_TYPE = "application/problem+json"
SETTINGS = web.AppKey("settings", Settings)
READY_CHECKS = web.AppKey("ready_checks", dict)

Model = TypeVar("Model", bound=BaseModel)
ReadyCheck = Callable[[], Awaitable[None]]


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def json_response(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.json_bytes_response(data, status=status, headers=headers, dumps=orjson.dumps)


def problem_response(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type_: str = errors.AppError.type_,
    errors_: list[dict] | None = None,
    headers: dict[str, str] | None = None,
    extra: dict | None = None,
) -> web.Response:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors_:
        body["errors"] = errors_
    if extra:
        body.update(extra)
    return web.Response(
        body=orjson.dumps(body), status=status, headers=headers, content_type=PROBLEM_TYPE
    )


def error_response(exc: errors.AppError) -> web.Response:
    return problem_response(
        exc.status,
        exc.title,
        exc.detail,
        type_=exc.type_,
        errors_=exc.errors,
        headers=exc.headers,
        extra=exc.extra,
    )


def _route_name(request: web.Request) -> str:
    info = request.match_info
    route = info.route if info is not None else None
    resource = route.resource if route is not None else None
    if resource is None:
        return "unmatched"
    return resource.canonical


def edge_middleware(service: str):
    """Request id, trace context, problem+json for every error, metrics."""
    # The metric children of each (method, route, status): prometheus_client's
    # labels() costs more than the increment and the observation together.
    children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def metric_children(method: str, route: str, status: int) -> tuple[Any, Any]:
        key = (method, route, status)
        found = children.get(key)
        if found is None:
            found = (
                metrics.HTTP_REQUESTS.labels(service, method, route, str(status)),
                metrics.HTTP_LATENCY.labels(service, route),
            )
            if len(children) < MAX_CACHED_METRIC_CHILDREN:  # methods are the client's to choose
                children[key] = found
        return found

    @web.middleware
    async def middleware(request: web.Request, handler) -> web.StreamResponse:
        started = time.perf_counter()
        headers = request.headers
        rid = clean_request_id(headers.get("X-Request-ID")) or new_trace_id()[:16]
        parent = parse_traceparent(headers.get("traceparent"))
        request_id_var.set(rid)
        trace_id_var.set(parent[0] if parent else new_trace_id())
        span_id_var.set(new_span_id())
        try:
            response = await handler(request)
        except errors.AppError as exc:
            response = error_response(exc)
        except web.HTTPException as exc:
            response = _http_exception_problem(exc)
        except OutOfMemoryError as exc:
            # maxmemory with noeviction: the write was refused, nothing changed.
            logger.warning("redis is full: %r", exc)
            response = error_response(errors.StorageFull(
                "The database is full; retry shortly.", headers={"Retry-After": "5"}
            ))
        except REDIS_UNAVAILABLE as exc:
            logger.warning("redis unavailable: %r", exc)
            response = problem_response(
                503,
                "Service unavailable",
                "The database is not reachable; retry shortly.",
                type_="/problems/unavailable",
                headers={"Retry-After": "1"},
            )
        except (RedisTimeoutError, asyncio.TimeoutError) as exc:
            logger.warning("timeout: %r", exc)
            response = problem_response(
                504,
                "Timeout",
                "A dependency did not answer in time.",
                type_="/problems/timeout",
                headers={"Retry-After": "1"},
            )
        except asyncio.CancelledError:
            count, latency = metric_children(request.method, _route_name(request), CLIENT_CLOSED)
            count.inc()
            latency.observe(time.perf_counter() - started)
            raise
        except Exception as exc:
            if isinstance(exc, ConnectionResetError) and _client_gone(request):
                # The client left while its body was read: nobody to answer.
                logger.info("client closed %s %s", request.method, request.path)
                response = web.Response(status=CLIENT_CLOSED)
            else:
                logger.exception("unhandled error on %s %s", request.method, request.path)
                response = problem_response(
                    500, "Internal error", "An unexpected error occurred."
                )
        if not response.prepared:
            response.headers["X-Request-ID"] = rid
        count, latency = metric_children(request.method, _route_name(request), response.status)
        count.inc()
        latency.observe(time.perf_counter() - started)
        return response

    return middleware


def _client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def _http_exception_problem(exc: web.HTTPException) -> web.StreamResponse:
    """aiohttp's own refusals (no such route, a method the route lacks, a body
    too large) as the problems of our own types."""
    if exc.status < 400:
        return exc
    headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
    kind = errors.error_for_status(exc.status)
    detail = None
    if exc.status == 413:
        detail = f"The body must be at most {MAX_BODY} bytes."
    elif exc.status == 405:
        allowed = headers.get("Allow") or exc.headers.get("Allow", "")
        detail = f"This route takes only {allowed}." if allowed else "Method not allowed here."
    elif exc.status == 404:
        detail = "No such route."
    elif exc.text and not exc.text.startswith(f"{exc.status}:"):
        detail = exc.text
    title = kind.title if kind is not errors.AppError else exc.reason
    type_ = kind.type_ if kind is not errors.AppError else f"/problems/http-{exc.status}"
    return problem_response(exc.status, title, detail, type_=type_, headers=headers)


# Field messages a person can act on, instead of a pattern or a library's
# wording (docs/api.md): by pydantic's error type, with its context.
PATTERN_HINTS = {
    r"^[a-z0-9_.-]+$": "may hold only lower-case letters, digits, '_', '.' and '-'",
    r"^[A-Za-z0-9 -]+$": "may hold only letters, digits, spaces and '-'",
}
_MESSAGES = {
    "missing": "is required",
    "string_too_short": "must be at least {min_length} character(s) long",
    "string_too_long": "must be at most {max_length} characters long",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be more than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} items",
}


def field_message(err: dict) -> str:
    kind, ctx = err.get("type"), err.get("ctx") or {}
    if kind == "value_error":
        return str(ctx.get("error") or err["msg"])
    if kind == "string_pattern_mismatch":
        return PATTERN_HINTS.get(ctx.get("pattern"), "holds characters that are not allowed here")
    template = _MESSAGES.get(kind)
    if template is None:
        return err["msg"]
    try:
        return template.format(**ctx)
    except (KeyError, IndexError, ValueError):
        return err["msg"]


def validation_errors(exc: ValidationError, prefix: str = "") -> list[dict]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = ".".join(str(p) for p in err["loc"] if p != "__root__")
        if prefix:
            loc = f"{prefix}.{loc}" if loc else prefix
        out.append({"field": loc or "body", "message": field_message(err)})
    return out


async def read_body(request: web.Request, *, optional: bool = False) -> Any:
    """The JSON body: 415 if not JSON, 400 if unreadable, 413 if too big."""
    if not request.body_exists or request.content_length == 0:
        if optional:
            return {}
        raise errors.BadRequest("A JSON body is required.")
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        if optional and not request.can_read_body:
            return {}
        raise errors.UnsupportedMediaType("The body must be application/json.")
    raw = await request.read()
    if not raw.strip():
        if optional:
            return {}
        raise errors.BadRequest("A JSON body is required.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise errors.BadRequest(f"The body is not valid JSON: {exc}") from None


async def parse_body(request: web.Request, model: type[Model], *, optional: bool = False) -> Model:
    data = await read_body(request, optional=optional)
    if not isinstance(data, dict):
        raise errors.Invalid(
            "The body must be a JSON object.",
            errors=[{"field": "body", "message": "must be an object"}],
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise errors.Invalid(errors=validation_errors(exc)) from None


def parse_query(request: web.Request, model: type[Model]) -> Model:
    """Query parameters: a wrong type is 400, out of range is 422 (API.md)."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        errs = validation_errors(exc)
        kinds = {e["type"] for e in exc.errors()}
        type_errors = {"int_parsing", "float_parsing", "bool_parsing", "int_from_float"}
        if kinds & type_errors:
            raise errors.BadRequest(
                "A query parameter has the wrong type.", errors=errs
            ) from None
        raise errors.Invalid(errors=errs) from None


async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks: dict[str, ReadyCheck] = request.app[READY_CHECKS]
    names = list(checks)
    results = await asyncio.gather(
        *(asyncio.wait_for(checks[n](), 1.5) for n in names), return_exceptions=True
    )
    states = {}
    for name, result in zip(names, results):
        states[name] = "ok" if not isinstance(result, BaseException) else f"down: {result!r}"[:200]
    ok = all(v == "ok" for v in states.values())
    if ok:
        return json_response({"status": "ready", "checks": states})
    return problem_response(
        503,
        "Not ready",
        "A dependency is down.",
        type_="/problems/not-ready",
        headers={"Retry-After": "1"},
        extra={"checks": states},
    )


async def metrics_handler(request: web.Request) -> web.Response:
    body, ctype = metrics.render()
    return web.Response(body=body, headers={"Content-Type": ctype})


# On every response of the gateway (the public edge: API and dashboard alike;
# the services answer only the gateway, which does not pass their headers
# on, so they send none of these). The dashboard loads its script,
# style, map and data from its own origin, draws on a canvas and sets styles
# from script only; its favicon is an empty data: URL.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    # No product or version: nothing to match against a list of known flaws.
    "Server": "ridehail",
}


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Just before any response's headers go out (streamed ones too)."""
    headers = response.headers
    for name, value in SECURITY_HEADERS.items():
        headers[name] = value


def create_base_app(settings: Settings, admission: Admission | None = None) -> web.Application:
    """An application with the shared middleware and the operations routes.

    Services add their own routes, cleanup contexts and readiness checks
    (`app[READY_CHECKS]["redis"] = ...`). `admission` (common/admission.py)
    goes first, so a request it sheds costs no more than its own answer.
    """
    middlewares = [edge_middleware(settings.service)]
    if admission is not None and admission.max_limit:
        middlewares.insert(0, admission.middleware)
    app = web.Application(middlewares=middlewares, client_max_size=MAX_BODY)
    app[SETTINGS] = settings
    app[READY_CHECKS] = {}
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    return app
