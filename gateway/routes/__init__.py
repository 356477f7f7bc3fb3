"""The public routes, one module per resource, each declaring its operations
on its own `Api` table (gateway/api.py). `setup_routes(app, settings)`
installs them all and renders /openapi.json from the same table: a route is
served and documented when its module is listed in `RESOURCES`, not when it
happens to be imported."""

from __future__ import annotations

from aiohttp import web

from common.settings import Settings

from ..api import Api
from ..openapi import build as build_openapi
from . import (
    accounts,
    driver,
    estimates,
    explorer,
    health,
    history,
    nearby,
    ops,
    site,
    trip_events,
    trips,
    vocabulary,
)
from .site import OPENAPI_DOC, render_openapi

# The order of the operations in /openapi.json.
RESOURCES = (
    accounts, estimates, trips, trip_events, nearby, driver, ops, site, health, history, explorer,
    vocabulary,
)


def route_table() -> Api:
    """Every operation of the public API, in the document's order."""
    table = Api()
    for module in RESOURCES:
        table.include(module.api)
    return table


def setup_routes(app: web.Application, settings: Settings) -> Api:
    """Install every route on `app` and keep the OpenAPI document they make
    (`OPENAPI_DOC`, served by GET /openapi.json)."""
    table = route_table()
    table.install(app)
    app[OPENAPI_DOC] = render_openapi(build_openapi(table, settings))
    return table
