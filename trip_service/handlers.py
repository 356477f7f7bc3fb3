"""HTTP handlers of the internal API: parse, call the store, answer."""

from __future__ import annotations

from aiohttp import web

from common.models import PageQuery
from common.trip import document
from common.web import json_response, parse_body, parse_query

from .models import AnalyticsQuery, CancelBody, EstimateBody, OverviewQuery, RatingBody, TripBody
from .store import TripStore

STORE = web.AppKey("trip_store", TripStore)


def _store(request: web.Request) -> TripStore:
    return request.app[STORE]


async def estimates(request: web.Request) -> web.Response:
    body = await parse_body(request, EstimateBody)
    items = await _store(request).estimates(body.region, body.pickup.as_dict(), body.dropoff.as_dict())
    return json_response({"estimates": items})


async def create_trip(request: web.Request) -> web.Response:
    body = await parse_body(request, TripBody)
    store = _store(request)
    doc = await store.request(
        body.rider_id, body.product, body.pickup.as_dict(), body.dropoff.as_dict(), body.trip_id
    )
    return json_response(await store.rendered(doc), status=201)


async def get_trip(request: web.Request) -> web.Response:
    return json_response(await _store(request).get(request.match_info["trip_id"]))


async def rider_trips(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    page = await _store(request).rider_trips(request.match_info["rider_id"], query.limit, query.cursor)
    return json_response(page)


async def driver_trips(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    page = await _store(request).driver_trips(
        request.match_info["driver_id"], query.limit, query.cursor
    )
    return json_response(page)


async def cancel_trip(request: web.Request) -> web.Response:
    body = await parse_body(request, CancelBody)
    doc = await _store(request).cancel(request.match_info["trip_id"], body.rider_id, body.reason)
    return json_response(document.render(doc))


async def rate_trip(request: web.Request) -> web.Response:
    body = await parse_body(request, RatingBody)
    doc = await _store(request).rate(
        request.match_info["trip_id"], body.rider_id, body.stars, body.comment
    )
    return json_response(document.render(doc))


async def timeline(request: web.Request) -> web.Response:
    return json_response(await _store(request).timeline(request.match_info["trip_id"]))


async def trip_event_items(request: web.Request) -> web.Response:
    return json_response({"items": await _store(request).event_items(request.match_info["trip_id"])})


async def overview(request: web.Request) -> web.Response:
    query = parse_query(request, OverviewQuery)
    store = _store(request)
    out = await store.overview(query.limit, query.active_limit)
    out["storage"] = await store.storage()
    return json_response(out)


async def analytics(request: web.Request) -> web.Response:
    query = parse_query(request, AnalyticsQuery)
    return json_response(await _store(request).analytics(query.days))


def add_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/internal/estimates", estimates)
    r.add_post("/internal/trips", create_trip)
    r.add_get("/internal/trips/{trip_id}", get_trip)
    r.add_get("/internal/riders/{rider_id}/trips", rider_trips)
    r.add_post("/internal/trips/{trip_id}/cancel", cancel_trip)
    r.add_post("/internal/trips/{trip_id}/rating", rate_trip)
    r.add_get("/internal/trips/{trip_id}/timeline", timeline)
    r.add_get("/internal/trips/{trip_id}/events", trip_event_items)
    r.add_get("/internal/ops/overview", overview)
    r.add_get("/internal/drivers/{driver_id}/trips", driver_trips)
    r.add_get("/internal/ops/analytics", analytics)
