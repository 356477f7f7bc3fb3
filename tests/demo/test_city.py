"""The simulated city: its streets, its settings, and a run against a real system."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from deploy.city import (
    Reply,
    StreetGraph,
    Vehicle,
    backoff_s,
    distance_m,
    inside,
    parse_config,
)
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
            [sys.executable, "-m", "deploy.city", "--gateway", gateway, "--drivers", "6",
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
    assert sum(drivers[p]["online"] for p in ("standard", "xl", "premium")) == 0, drivers
    assert drivers["locations"] == [] and drivers["locations_total"] == 0, drivers
