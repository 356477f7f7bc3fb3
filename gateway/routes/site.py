"""The site around the API: the OpenAPI document, the operations dashboard
and its files."""

from __future__ import annotations

from pathlib import Path

import orjson
from aiohttp import web

from common import errors

from ..api import Api, Call, Response

api = Api()

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
OPENAPI_DOC = web.AppKey("openapi_doc", bytes)

PLACEHOLDER = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Ride-hailing operations</title></head>
<body><h1>Ride-hailing operations</h1>
<p>The dashboard is not installed on this gateway.</p>
<p>The API is described at <a href="/openapi.json">/openapi.json</a>;
health at <a href="/readyz">/readyz</a>, metrics at <a href="/metrics">/metrics</a>.</p>
</body></html>
"""


@api.route(
    "GET",
    "/openapi.json",
    summary="This document",
    tags="operations",
    roles=None,
    responses={200: Response("The OpenAPI 3.1 document.", None, content_type="application/json")},
)
async def openapi_json(call: Call) -> web.Response:
    return web.Response(
        body=call.request.app[OPENAPI_DOC],
        content_type="application/json",
        headers={"Cache-Control": "no-cache"},
    )


@api.route(
    "GET",
    "/",
    summary="The operations dashboard",
    tags="operations",
    roles=None,
    responses={200: Response("A web page; its data needs an ops session.", None, "text/html")},
    description="Open `/#token=<session token>` to sign the page in with an ops session.",
)
async def dashboard(call: Call) -> web.StreamResponse:
    index = STATIC_DIR / "index.html"
    if index.is_file():
        return web.FileResponse(index, headers={"Cache-Control": "no-cache"})
    return web.Response(body=PLACEHOLDER, content_type="text/html")


@api.route(
    "GET",
    "/static/{path:.+}",
    summary="Files of the dashboard",
    tags="operations",
    roles=None,
    responses={200: Response("The file.", None, "application/octet-stream")},
    errors=(404,),
)
async def static_file(call: Call) -> web.StreamResponse:
    name = call.path("path")
    root = STATIC_DIR.resolve()
    try:
        target = (root / name).resolve()
    except (OSError, ValueError):
        raise errors.NotFound("No such file.") from None
    # Only files inside the folder: no `..`, no symlinks out of it.
    if root not in target.parents or not target.is_file():
        raise errors.NotFound("No such file.")
    return web.FileResponse(target, headers={"Cache-Control": "no-cache"})


def render_openapi(doc: dict) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2)
