"""HTTP handlers of the internal API: parse, call the store, answer."""

from __future__ import annotations

from aiohttp import web

from common.redisconn import REDIS
from common.trip.statemachine import ADVANCES
from common.web import SETTINGS, json_response, parse_body, parse_query

from . import document, ops
from .models import (
    DriverBody,
    EtaBody,
    LocationBody,
    NearbyQuery,
    OverviewQuery,
    PageQuery,
    ReasonBody,
    StatusBody,
    WaitQuery,
)
from .offers import OfferPoller
from .store import DriverStore

STORE = web.AppKey("driver_store", DriverStore)
POLLER = web.AppKey("offer_poller", OfferPoller)


def _store(request: web.Request) -> DriverStore:
    return request.app[STORE]


async def register(request: web.Request) -> web.Response:
    body = await parse_body(request, DriverBody)
    doc, created = await _store(request).register(
        body.driver_id, body.first_name, body.last_name, body.car.model_dump(), body.product
    )
    return json_response(document.render(doc), status=201 if created else 200)


async def get_driver(request: web.Request) -> web.Response:
    doc = await _store(request).get(request.match_info["driver_id"])
    return json_response(document.render(doc))


async def set_status(request: web.Request) -> web.Response:
    body = await parse_body(request, StatusBody)
    driver_id = request.match_info["driver_id"]
    store = _store(request)
    doc = await (store.go_online(driver_id) if body.status == "online" else store.go_offline(driver_id))
    return json_response(document.render(doc))


async def set_location(request: web.Request) -> web.Response:
    body = await parse_body(request, LocationBody)
    driver_id = request.match_info["driver_id"]
    # Writes and returns: a fix that makes the driver available publishes
    # `driver.available`, and the dispatcher serves them from the stream.
    await _store(request).update_location(
        driver_id, body.lat, body.lon, body.heading, body.speed_mps
    )
    return web.Response(status=204)


async def next_offer(request: web.Request) -> web.Response:
    query = parse_query(request, WaitQuery)
    offer = await request.app[POLLER].next_offer(request.match_info["driver_id"], query.wait)
    if offer is None:
        return web.Response(status=204)
    return json_response(offer)


async def accept(request: web.Request) -> web.Response:
    m = request.match_info
    doc = await _store(request).accept(m["driver_id"], m["trip_id"])
    return json_response(await _store(request).render_trip(doc))


async def decline(request: web.Request) -> web.Response:
    m = request.match_info
    await _store(request).decline(m["driver_id"], m["trip_id"])
    return web.Response(status=204)


async def trip_action(request: web.Request) -> web.Response:
    m = request.match_info
    action = m["action"]
    store = _store(request)
    if action in ADVANCES:
        await parse_body(request, ReasonBody, optional=True)
        doc = await store.advance(m["driver_id"], m["trip_id"], action)
    elif action == "complete":
        await parse_body(request, ReasonBody, optional=True)
        doc = await store.complete(m["driver_id"], m["trip_id"])
    else:
        body = await parse_body(request, ReasonBody, optional=True)
        doc = await store.cancel(m["driver_id"], m["trip_id"], body.reason)
    return json_response(await store.render_trip(doc))


async def active_trip(request: web.Request) -> web.Response:
    trip = await _store(request).active_trip(request.match_info["driver_id"])
    if trip is None:
        return web.Response(status=204)
    return json_response(await _store(request).render_trip(trip))


async def driver_trips(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    page = await _store(request).driver_trips(
        request.match_info["driver_id"], query.limit, query.cursor
    )
    return json_response(page)


async def trip_driver(request: web.Request) -> web.Response:
    return json_response(await _store(request).assigned_driver(request.match_info["trip_id"]))


async def nearby(request: web.Request) -> web.Response:
    q = parse_query(request, NearbyQuery)
    return json_response(await _store(request).nearby(q.region, q.lat, q.lon, q.radius_m, q.product))


async def etas(request: web.Request) -> web.Response:
    body = await parse_body(request, EtaBody)
    return json_response(await _store(request).etas(body.region, body.pickup.lat, body.pickup.lon))


async def overview(request: web.Request) -> web.Response:
    query = parse_query(request, OverviewQuery)
    return json_response(
        await ops.overview(request.app[REDIS], request.app[SETTINGS], query.locations_limit)
    )


def add_routes(app: web.Application) -> None:
    r = app.router
    d = "/internal/drivers/{driver_id}"
    r.add_post("/internal/drivers", register)
    r.add_get(d, get_driver)
    r.add_post(f"{d}/status", set_status)
    r.add_put(f"{d}/location", set_location)
    r.add_get(f"{d}/offers/next", next_offer)
    r.add_post(f"{d}/offers/{{trip_id}}/accept", accept)
    r.add_post(f"{d}/offers/{{trip_id}}/decline", decline)
    actions = "|".join([*ADVANCES, "complete", "cancel"])
    r.add_post(f"{d}/trips/{{trip_id}}/{{action:{actions}}}", trip_action)
    r.add_get(f"{d}/trip", active_trip)
    r.add_get(f"{d}/trips", driver_trips)
    r.add_get("/internal/trips/{trip_id}/driver", trip_driver)
    r.add_get("/internal/nearby", nearby)
    r.add_post("/internal/etas", etas)
    r.add_get("/internal/ops/overview", overview)
