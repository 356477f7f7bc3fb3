"""GET /v1/vocabulary: the trip's statuses, events and transitions and the
products, as common defines them once, for clients that would otherwise
carry a copy (the dashboard, the simulated city)."""

from __future__ import annotations

import orjson
from aiohttp import web

from common.fares import CATALOG
from common.trip.statemachine import ACTIVE, TERMINAL, TRANSITIONS, TRIP_EVENTS, WITH_DRIVER, Status

from .. import models
from ..api import Api, Call
from .shared import ok

# It changes only with a deployment.
CACHE_CONTROL = "public, max-age=300"

api = Api()


def vocabulary() -> dict:
    return {
        "trip_statuses": [
            {"name": s.value, "active": s in ACTIVE, "terminal": s in TERMINAL,
             "with_driver": s in WITH_DRIVER}
            for s in Status
        ],
        "trip_events": [
            {"type": e.type, "status": e.status.value if e.status else None, "public": e.public}
            for e in TRIP_EVENTS
        ],
        "transitions": [
            {"action": t.action, "from": [s.value for s in Status if s in t.sources],
             "to": t.target.value, "actor": t.actor}
            for t in TRANSITIONS.values()
        ],
        "products": [p.describe() for p in CATALOG.values()],
    }


# Built once: the definitions are constants of the code.
BODY = orjson.dumps(vocabulary())


@api.route(
    "GET",
    "/v1/vocabulary",
    summary="Trip statuses, events, transitions and products",
    tags="trips",
    roles=None,
    responses=ok(models.Vocabulary, "The vocabulary the server speaks."),
    description="What the state machine and the catalog define: the statuses in lifecycle "
    "order with their classes, every trip event type with the status it leads to and "
    "whether riders see it, the transitions, the products with their fares. Public and "
    "cacheable for five minutes.",
)
async def get_vocabulary(call: Call) -> web.Response:
    return web.Response(body=BODY, content_type="application/json",
                        headers={"Cache-Control": CACHE_CONTROL})
