"""GET /docs: an interactive explorer of /openapi.json (Swagger UI).

Swagger UI comes from the `swagger-ui-py` package (its static files, nothing
fetched from a CDN); the page and its start-up script are ours
(gateway/static/docs.*), so the page runs under the same Content-Security-
Policy as the dashboard: no inline script.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from aiohttp import web

from common import errors

from ..api import Api, Call, Response
from .site import STATIC_DIR

api = Api()

# Only these files of the package are served.
SWAGGER_FILES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"})


def swagger_ui_dir() -> Path | None:
    """The package's static folder, found without importing the package (its
    own web-framework glue would pull in more than the files)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if folder.is_dir() else None


@api.route(
    "GET",
    "/docs",
    summary="An interactive explorer of this API",
    tags="operations",
    roles=None,
    responses={200: Response("A web page (Swagger UI) on /openapi.json.", None, "text/html")},
    description="Sign in on the page (or call `POST /v1/sessions` from it) and every "
    "request it sends carries the session's bearer token.",
)
async def docs_page(call: Call) -> web.StreamResponse:
    return web.FileResponse(STATIC_DIR / "docs.html", headers={"Cache-Control": "no-cache"})


@api.route(
    "GET",
    "/docs/static/{name}",
    summary="Files of the API explorer",
    tags="operations",
    roles=None,
    responses={200: Response("The file.", None, "application/octet-stream")},
    errors=(404,),
)
async def docs_file(call: Call) -> web.StreamResponse:
    name = call.path("name")
    folder = swagger_ui_dir()
    if name not in SWAGGER_FILES or folder is None:
        raise errors.NotFound("No such file.")
    # The package's files change only with its version: cache them a day.
    return web.FileResponse(folder / name, headers={"Cache-Control": "public, max-age=86400"})
