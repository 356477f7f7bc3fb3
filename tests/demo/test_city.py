"""The simulated city: its streets, its settings, and a run against a real system."""

from __future__ import annotations

import asyncio
import copy
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import aiohttp
import pytest
from aiohttp import web

from common.retry import backoff_s
from deploy.sim.city import City
from deploy.sim.client import Api, Reply, Stats
from deploy.sim.config import CityConfig, parse_config
from deploy.sim.driver import Driver
from deploy.sim.geometry import distance_m, inside
from deploy.sim.person import pick_product
from deploy.sim.rider import RIDER_PRODUCTS
from deploy.sim.streets import StreetGraph
from deploy.sim.vehicle import Vehicle
from deploy.sim.vocabulary import Vocabulary, VocabularyError
from tests.helpers.demo import http_json, ops_token
from tests.harness import ROOT

SF = {"min_lat": 37.70, "min_lon": -122.52, "max_lat": 37.83, "max_lon": -122.35}
# Well inside the water of the bay and of the ocean.
WATER = [(37.80, -122.37), (37.76, -122.53 + 0.005), (37.82, -122.45), (37.725, -122.492)]


@pytest.fixture(scope="module")
def graph() -> StreetGraph:
    return StreetGraph.load("sf")


def test_streets_lie_on_land_inside_the_region(graph):
    assert len(graph.nodes) > 1000
    for lat, lon in graph.nodes:
        assert SF["min_lat"] <= lat <= SF["max_lat"] and SF["min_lon"] <= lon <= SF["max_lon"]
    for p in WATER:
        assert not graph.on_land(p), p
    assert graph.on_land((37.7749, -122.4194))  # Civic Center


def test_every_corner_reaches_every_other(graph):
    rng = random.Random(7)
    for _ in range(30):
        a, b = graph.random_node(rng), graph.random_node(rng)
        path = graph.route(a, b)
        assert path[0] == graph.nodes[a] and path[-1] == graph.nodes[b]
        # Along streets: consecutive points are neighbours, never a jump across water.
        assert all(distance_m(p, q) < 600 for p, q in zip(path, path[1:]))
        assert all(graph.on_land(p) for p in path)


def test_destinations_keep_their_distance(graph):
    rng = random.Random(3)
    for _ in range(20):
        a = graph.random_node(rng)
        b = graph.destination(rng, a, 500, 3000)
        assert 500 <= distance_m(graph.nodes[a], graph.nodes[b]) <= 3000


async def test_a_vehicle_follows_its_route_at_its_speed(graph):
    rng = random.Random(1)
    a, b = graph.random_node(rng), graph.destination(rng, graph.random_node(rng), 1500, 2500)
    path = graph.route(a, b)
    length = sum(distance_m(p, q) for p, q in zip(path, path[1:]))
    car = Vehicle(path[0])
    car.drive(path, 50.0)
    assert not car.arrived.is_set()
    ticks = 0
    while not car.arrived.is_set():
        car.advance(1.0)
        ticks += 1
    assert car.position == path[-1]
    assert abs(ticks - length / 50.0) <= 1.5


def test_point_in_polygon():
    square = [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0)]
    assert inside((0.5, 0.5), square)
    assert not inside((1.5, 0.5), square)


def test_settings_come_from_options_then_environment():
    env = {"CITY_DRIVERS": "3", "CITY_RIDERS": "4", "CITY_PACE": "2.5", "CITY_RUN_ID": "abc"}
    cfg = parse_config(["--gateway", "http://x:1/", "--riders", "9"], env)
    assert (cfg.gateway, cfg.drivers, cfg.riders, cfg.pace) == ("http://x:1", 3, 9, 2.5)
    assert cfg.run_id == "abc"
    assert parse_config([], {}).run_id != parse_config([], {}).run_id  # new names every run
    with pytest.raises(SystemExit):
        parse_config(["--pace", "0"], {})


def test_backoff_grows_and_honours_retry_after():
    assert backoff_s(0) < backoff_s(4) <= 8.0 * 1.2
    assert backoff_s(0, "3") == 3.0
    assert Reply(503, {"title": "Service unavailable", "detail": "x"}).describe().startswith("503")


def test_user_names_fit_the_api_rules():
    cfg = parse_config([], {})
    name = f"city.d.{cfg.run_id}.123"
    assert re.fullmatch(r"[a-z0-9_.-]{3,32}", name)


def test_the_city_runs_trips_end_to_end_and_leaves_nothing_hanging(demo_system, tmp_path):
    """Drivers and riders go through whole trips on the public API; at the end
    every trip is settled (none left assigned or in progress)."""
    gateway = demo_system.url
    token = ops_token(gateway)
    log_path = tmp_path / "city.log"
    env = {**os.environ, "CITY_LOG_EVERY_S": "5", "CITY_SEED": "11"}
    with open(log_path, "wb") as log:
        city = subprocess.Popen(
            [sys.executable, "-m", "deploy.sim", "--gateway", gateway, "--drivers", "6",
             "--riders", "6", "--pace", "30"],
            cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 90
        counts: dict = {}
        while time.monotonic() < deadline:
            assert city.poll() is None, log_path.read_text()[-3000:]
            _, overview = http_json("GET", f"{gateway}/v1/ops/overview", token=token)
            counts = overview.get("trips_by_status") or {}
            if counts.get("completed", 0) >= 2:
                break
            time.sleep(1)
        assert counts.get("completed", 0) >= 2, (counts, log_path.read_text()[-3000:])
        city.send_signal(signal.SIGTERM)
        assert city.wait(30) == 0
    finally:
        if city.poll() is None:
            city.kill()
            city.wait()
    log = log_path.read_text()
    assert "Traceback" not in log, log[-3000:]
    # Every location fix is valid (in the region, a real-life speed and heading).
    assert "location refused" not in log, log[-3000:]
    assert re.search(r"trips requested \d+ completed [1-9]", log), log[-3000:]
    _, overview = http_json("GET", f"{gateway}/v1/ops/overview", token=token)
    counts = overview["trips_by_status"]
    for status in ("assigned", "arrived", "in_progress"):
        assert counts.get(status, 0) == 0, counts
    drivers = overview["drivers"]
    _, vocabulary = http_json("GET", f"{gateway}/v1/vocabulary")
    products = [p["name"] for p in vocabulary["products"]]
    assert sum(drivers[p]["online"] for p in products) == 0, drivers
    assert drivers["locations"] == [] and drivers["locations_total"] == 0, drivers


# --- the vocabulary the city reads from the gateway -------------------------------
# GET /v1/vocabulary as the gateway serves it (the route itself is tested with the
# gateway; here a stand-in server answers with the same shape).
VOCABULARY = {
    "trip_statuses": [
        {"name": "requested", "active": True, "terminal": False, "with_driver": False},
        {"name": "assigned", "active": True, "terminal": False, "with_driver": True},
        {"name": "arrived", "active": True, "terminal": False, "with_driver": True},
        {"name": "in_progress", "active": True, "terminal": False, "with_driver": True},
        {"name": "completed", "active": False, "terminal": True, "with_driver": False},
        {"name": "cancelled", "active": False, "terminal": True, "with_driver": False},
        {"name": "expired", "active": False, "terminal": True, "with_driver": False},
    ],
    "trip_events": [
        {"type": "trip.requested", "status": "requested", "public": True},
        {"type": "trip.offered", "status": None, "public": False},
        {"type": "trip.offer_declined", "status": None, "public": False},
        {"type": "trip.offer_expired", "status": None, "public": False},
        {"type": "trip.assigned", "status": "assigned", "public": True},
        {"type": "trip.driver_cancelled", "status": "requested", "public": True},
        {"type": "trip.driver_arrived", "status": "arrived", "public": True},
        {"type": "trip.started", "status": "in_progress", "public": True},
        {"type": "trip.completed", "status": "completed", "public": True},
        {"type": "trip.cancelled", "status": "cancelled", "public": True},
        {"type": "trip.expired", "status": "expired", "public": True},
        {"type": "trip.rated", "status": None, "public": True},
    ],
    "transitions": [
        {"action": "offer", "from": ["requested"], "to": "requested", "actor": "dispatcher"},
        {"action": "decline", "from": ["requested"], "to": "requested", "actor": "driver"},
        {"action": "expire_offer", "from": ["requested"], "to": "requested",
         "actor": "sweeper"},
        {"action": "accept", "from": ["requested"], "to": "assigned", "actor": "driver"},
        {"action": "arrive", "from": ["assigned"], "to": "arrived", "actor": "driver"},
        {"action": "start", "from": ["arrived"], "to": "in_progress", "actor": "driver"},
        {"action": "complete", "from": ["in_progress"], "to": "completed", "actor": "driver"},
        {"action": "rider_cancel", "from": ["requested", "assigned", "arrived"],
         "to": "cancelled", "actor": "rider"},
        {"action": "driver_cancel", "from": ["assigned", "arrived"], "to": "requested",
         "actor": "driver"},
        {"action": "expire", "from": ["requested"], "to": "expired", "actor": "sweeper"},
        {"action": "rate", "from": ["completed"], "to": "completed", "actor": "rider"},
    ],
    "products": [
        {"name": "standard", "base": "2.50", "per_km": "1.20", "per_minute": "0.30",
         "minimum": "7.00", "currency": "USD"},
        {"name": "xl", "base": "3.50", "per_km": "1.80", "per_minute": "0.45",
         "minimum": "10.00", "currency": "USD"},
        {"name": "premium", "base": "5.00", "per_km": "2.60", "per_minute": "0.65",
         "minimum": "15.00", "currency": "USD"},
    ],
}


def small_graph() -> StreetGraph:
    return StreetGraph.plain(37.770, -122.430, 37.780, -122.420)


async def stand_in(aiohttp_server, vocabulary: dict | None, answers: list[int] | None = None):
    """A gateway stand-in: /readyz, /v1/vocabulary (unless None), and /flaky
    answering `answers` in turn (then 200), 503s with Retry-After: 0."""
    hits: list[str] = []
    answers = list(answers or [])

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def vocabulary_route(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response(vocabulary, headers={"Cache-Control": "public, max-age=300"})

    async def flaky(request: web.Request) -> web.Response:
        hits.append(request.path)
        status = answers.pop(0) if answers else 200
        return web.json_response({"title": "x"}, status=status, headers={"Retry-After": "0"})

    app = web.Application()
    app.router.add_get("/readyz", ready)
    app.router.add_get("/flaky", flaky)
    if vocabulary is not None:
        app.router.add_get("/v1/vocabulary", vocabulary_route)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/"), hits


async def city_with(url: str) -> City:
    """A city that has read its vocabulary from `url` (nobody in it started)."""
    city = City(CityConfig(gateway=url, seed=5, run_id="t"), small_graph())
    async with aiohttp.ClientSession() as session:
        city.api = Api(session, url, city.stats)
        city.vocabulary = await city.read_vocabulary()
    return city


async def test_the_city_takes_its_trip_vocabulary_from_the_gateway(aiohttp_server):
    url, hits = await stand_in(aiohttp_server, VOCABULARY)
    v = (await city_with(url)).vocabulary
    assert hits == ["/v1/vocabulary"]
    assert v.initial == "requested" and v.terminal == {"completed", "cancelled", "expired"}
    assert v.active == {"requested", "assigned", "arrived", "in_progress"}
    assert v.event_status["trip.driver_arrived"] == "arrived"
    assert v.event_status["trip.driver_cancelled"] == "requested"
    assert "trip.offered" not in v.event_status and "trip.rated" not in v.event_status
    assert v.sources("rider_cancel") == {"requested", "assigned", "arrived"}
    assert v.products == ("standard", "xl", "premium")
    # A driver's steps from a newly assigned trip to its end.
    steps, status = [], "assigned"
    while (action := v.driver_step(status)) is not None:
        steps.append(action)
        status = v.target(action)
    assert steps == ["arrive", "start", "complete"] and status == "completed"
    # Nothing for a driver to do on a trip nobody holds (accepting is an offer's).
    assert v.driver_step("requested") is None and v.driver_step("cancelled") is None


async def test_a_new_trip_state_needs_no_change_to_the_city(aiohttp_server):
    """The vocabulary with a `driver_en_route` state between assigned and
    arrived: the drivers take the new step, the riders see its event."""
    vocabulary = copy.deepcopy(VOCABULARY)
    vocabulary["trip_statuses"].insert(2, {"name": "driver_en_route", "active": True,
                                           "terminal": False, "with_driver": True})
    vocabulary["trip_events"].append(
        {"type": "trip.driver_en_route", "status": "driver_en_route", "public": True})
    vocabulary["transitions"].append({"action": "depart", "from": ["assigned"],
                                      "to": "driver_en_route", "actor": "driver"})
    for t in vocabulary["transitions"]:
        if t["action"] == "arrive":
            t["from"] = ["driver_en_route"]
    url, _ = await stand_in(aiohttp_server, vocabulary)
    v = (await city_with(url)).vocabulary
    steps, status = [], "assigned"
    while (action := v.driver_step(status)) is not None:
        steps.append(action)
        status = v.target(action)
    assert steps == ["depart", "arrive", "start", "complete"]
    assert v.event_status["trip.driver_en_route"] == "driver_en_route"
    assert "driver_en_route" in v.active and "driver_en_route" in v.with_driver


async def test_a_product_the_city_does_not_know_gets_cars_and_riders(aiohttp_server):
    """A new product ("pet", 5 seats) gets a generic car and an even share of
    drivers and riders; a product the system dropped is never asked for."""
    vocabulary = copy.deepcopy(VOCABULARY)
    vocabulary["products"] = [p for p in vocabulary["products"] if p["name"] != "premium"]
    vocabulary["products"].append({"name": "pet", "seats": 5, "base": "4.00"})
    url, _ = await stand_in(aiohttp_server, vocabulary)
    city = await city_with(url)
    drivers = [Driver(city, i) for i in range(200)]
    products = Counter(d.profile()["product"] for d in drivers)
    assert set(products) == {"standard", "xl", "pet"}, products
    # 1/3 against 0.6 + 0.25 + 1/3: about 28% of the fleet.
    assert 30 <= products["pet"] <= 90, products
    assert {d.car["seats"] for d in drivers if d.product == "pet"} == {5}
    rng = random.Random(2)
    asked = Counter(pick_product(rng, city.vocabulary.products, RIDER_PRODUCTS)
                    for _ in range(1000))
    assert set(asked) == {"standard", "xl", "pet"} and asked["pet"] > 150, asked


async def test_a_gateway_without_a_vocabulary_stops_the_city_with_a_reason(
        aiohttp_server, caplog):
    url, _ = await stand_in(aiohttp_server, None)
    city = City(CityConfig(gateway=url, drivers=1, riders=1, run_id="t"), small_graph())
    assert await asyncio.wait_for(city.run(asyncio.Event()), 30) == 1
    assert "gave no trip vocabulary" in caplog.text and "404" in caplog.text
    assert city.drivers == [] and city.riders == []
    for broken in ({"trip_statuses": []}, {**VOCABULARY, "products": []},
                   {**VOCABULARY, "trip_events": [{"type": "trip.requested"}]}, None):
        with pytest.raises(VocabularyError):
            Vocabulary.from_json(broken)


async def test_calls_are_retried_on_later_and_not_on_a_refusal(aiohttp_server):
    url, hits = await stand_in(aiohttp_server, VOCABULARY, [503, 429, 200, 404, 502, 502, 502])
    async with aiohttp.ClientSession() as session:
        api = Api(session, url, Stats())
        assert (await api.call("GET", "/flaky")).status == 200  # 503, 429, then 200
        assert api.stats.counts["retries"] == 2 and len(hits) == 3
        assert (await api.call("GET", "/flaky")).status == 404  # a refusal: once
        assert len(hits) == 4
        reply = await api.call("GET", "/flaky", attempts=3)  # 502 to the end: the last one
        assert reply.status == 502 and len(hits) == 7 and api.stats.counts["retries"] == 4
        assert api.stats.statuses[502] == 3 and api.stats.statuses[404] == 1
