"""The simulated city: riders and drivers using the public API as the apps do.

    python -m deploy.city --gateway http://127.0.0.1:8080 [--drivers 15] [--riders 25]
                          [--pace 4] [--duration 0] [--seed N]

Every rider and driver is a client of the gateway and nothing else: drivers
sign up, log in, go online, drive along the streets of the demo region while
reporting their location, long-poll offers, accept most of them, drive to the
pickup, arrive, start, drive to the dropoff and complete; riders look at the
cars nearby, ask for estimates, request trips with an Idempotency-Key, follow
them over server-sent events, sometimes cancel, and rate the completed ones.

Settings (a command-line option wins over its environment variable):

    CITY_GATEWAY      --gateway    gateway base URL (http://127.0.0.1:8080)
    CITY_DRIVERS      --drivers    number of drivers (15)
    CITY_RIDERS       --riders     number of riders (20)
    CITY_PACE         --pace       how much faster than real life the city runs (10):
                                   cars drive at 40 km/h x pace, riders think 1/pace as long
    CITY_DURATION_S   --duration   stop after this many seconds; 0 runs until SIGINT/SIGTERM (0)
    CITY_SEED         --seed       random seed, for a repeatable run (none)
    CITY_REGION       --region     home region of the city's users (sf)
    CITY_LOCATION_EVERY_S          seconds between a driver's location updates (2)
    CITY_LOG_EVERY_S               seconds between summary lines (15)
    CITY_RUN_ID                    user-name prefix; unset makes a new one per run, so
                                   restarts never collide (a name taken logs in instead)
    CITY_SECRET                    seed of the demo accounts' passwords (demo-city)

It never calls anything but the public API. It retries with backoff on 429,
502, 503, 504 and connection errors, treats any other unexpected answer as
"log it, wait, carry on", and logs one summary line every CITY_LOG_EVERY_S.
The street graph below is also used by the load tests (tests/load).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import heapq
import itertools
import json
import logging
import math
import os
import random
import signal
import statistics
import string
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp

logger = logging.getLogger("city")

EARTH_RADIUS_M = 6_371_000.0
BASE_SPEED_MPS = 11.0  # about 40 km/h in town
TERMINAL = frozenset({"completed", "cancelled", "expired"})
ACTIVE = frozenset({"requested", "assigned", "arrived", "in_progress"})
EVENT_STATUS = {
    "trip.requested": "requested",
    "trip.assigned": "assigned",
    "trip.driver_cancelled": "requested",
    "trip.driver_arrived": "arrived",
    "trip.started": "in_progress",
    "trip.completed": "completed",
    "trip.cancelled": "cancelled",
    "trip.expired": "expired",
}
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_BACKOFF_S = 8.0


# --------------------------------------------------------------------------
# Geography: the demo region's streets
# --------------------------------------------------------------------------

Point = tuple[float, float]  # (lat, lon)


def distance_m(a: Point, b: Point) -> float:
    """Great-circle distance (haversine)."""
    lat1, lon1 = math.radians(a[0]), math.radians(a[1])
    lat2, lon2 = math.radians(b[0]), math.radians(b[1])
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def heading_deg(a: Point, b: Point) -> float:
    """Initial bearing from a to b, degrees clockwise from north."""
    lat1, lat2 = math.radians(a[0]), math.radians(b[0])
    dlon = math.radians(b[1] - a[1])
    x = math.sin(dlon) * math.cos(lat2)
    y = math.cos(lat1) * math.sin(lat2) - math.sin(lat1) * math.cos(lat2) * math.cos(dlon)
    return (math.degrees(math.atan2(x, y)) + 360.0) % 360.0


def inside(point: Point, polygon: list[Point]) -> bool:
    """Ray casting; the dashboard uses the same rule."""
    lat, lon = point
    result = False
    j = len(polygon) - 1
    for i in range(len(polygon)):
        lat_i, lon_i = polygon[i]
        lat_j, lon_j = polygon[j]
        if (lat_i > lat) != (lat_j > lat):
            cross = (lon_j - lon_i) * (lat - lat_i) / (lat_j - lat_i) + lon_i
            if lon < cross:
                result = not result
        j = i
    return result


def map_path(region: str = "sf") -> Path:
    """The basemap the dashboard draws (gateway/static/map-<region>.json)."""
    return Path(str(resources.files("gateway").joinpath("static", f"map-{region}.json")))


@dataclass
class StreetGraph:
    """Intersections of a ~300 m street lattice clipped to land, plus arterials.

    Nodes are (lat, lon) points; driving follows edges; routes are A* paths.
    """

    bounds: dict[str, float]
    nodes: list[Point] = field(default_factory=list)
    edges: dict[int, list[int]] = field(default_factory=dict)
    land: list[list[Point]] = field(default_factory=list)
    water: list[list[Point]] = field(default_factory=list)

    @classmethod
    def load(cls, region: str = "sf") -> "StreetGraph":
        data = json.loads(map_path(region).read_text())
        return cls.from_map(data)

    @classmethod
    def from_map(cls, data: dict) -> "StreetGraph":
        b = data["bounds"]
        graph = cls(
            bounds=dict(b),
            land=[[tuple(p) for p in data["land"]]] if data.get("land") else [],
            water=[[tuple(p) for p in w["polygon"]] for w in data.get("water", [])],
        )
        graph._build(data["grid"]["lat_step"], data["grid"]["lon_step"], data.get("arterials", []))
        return graph

    @classmethod
    def plain(cls, min_lat: float, min_lon: float, max_lat: float, max_lon: float) -> "StreetGraph":
        """A lattice over the whole of a region with no basemap."""
        data = {
            "bounds": {"min_lat": min_lat, "min_lon": min_lon, "max_lat": max_lat,
                       "max_lon": max_lon},
            "grid": {"lat_step": 0.0027, "lon_step": 0.0034},
        }
        return cls.from_map(data)

    def on_land(self, p: Point) -> bool:
        b = self.bounds
        if not (b["min_lat"] <= p[0] <= b["max_lat"] and b["min_lon"] <= p[1] <= b["max_lon"]):
            return False
        if self.land and not any(inside(p, poly) for poly in self.land):
            return False
        return not any(inside(p, poly) for poly in self.water)

    def _build(self, lat_step: float, lon_step: float, arterials: list[dict]) -> None:
        b = self.bounds
        rows = int(round((b["max_lat"] - b["min_lat"]) / lat_step))
        cols = int(round((b["max_lon"] - b["min_lon"]) / lon_step))
        index: dict[tuple[int, int], int] = {}
        nodes: list[Point] = []
        edges: dict[int, set[int]] = {}

        def add_node(p: Point) -> int:
            nodes.append(p)
            edges[len(nodes) - 1] = set()
            return len(nodes) - 1

        def link(a: int, c: int) -> None:
            edges[a].add(c)
            edges[c].add(a)

        for i in range(1, rows):
            for j in range(1, cols):
                p = (round(b["min_lat"] + i * lat_step, 6), round(b["min_lon"] + j * lon_step, 6))
                if self.on_land(p):
                    index[(i, j)] = add_node(p)
        for (i, j), n in index.items():
            for di, dj in ((1, 0), (0, 1)):
                m = index.get((i + di, j + dj))
                if m is None:
                    continue
                mid = ((nodes[n][0] + nodes[m][0]) / 2, (nodes[n][1] + nodes[m][1]) / 2)
                if self.on_land(mid):
                    link(n, m)
        lattice = list(index.values())
        for arterial in arterials:
            previous = None
            for p in self._densify([tuple(q) for q in arterial["points"]], 300.0):
                n = add_node(p)
                if previous is not None:
                    link(previous, n)
                nearest = min(lattice, key=lambda k: distance_m(nodes[k], p), default=None)
                if nearest is not None and distance_m(nodes[nearest], p) < 260:
                    link(n, nearest)
                previous = n
        # Keep the largest connected piece: every node can reach every other.
        seen: set[int] = set()
        best: set[int] = set()
        for start in edges:
            if start in seen:
                continue
            part = {start}
            stack = [start]
            while stack:
                for nxt in edges[stack.pop()]:
                    if nxt not in part:
                        part.add(nxt)
                        stack.append(nxt)
            seen |= part
            if len(part) > len(best):
                best = part
        keep = sorted(best)
        renumber = {old: new for new, old in enumerate(keep)}
        self.nodes = [nodes[k] for k in keep]
        self.edges = {renumber[k]: sorted(renumber[m] for m in edges[k]) for k in keep}

    @staticmethod
    def _densify(points: list[Point], step_m: float) -> list[Point]:
        out = [points[0]]
        for a, c in itertools.pairwise(points):
            n = max(1, int(distance_m(a, c) // step_m))
            for k in range(1, n + 1):
                t = k / n
                out.append((a[0] + (c[0] - a[0]) * t, a[1] + (c[1] - a[1]) * t))
        return out

    def random_node(self, rng: random.Random) -> int:
        return rng.randrange(len(self.nodes))

    def nearest(self, p: Point) -> int:
        return min(range(len(self.nodes)), key=lambda k: distance_m(self.nodes[k], p))

    def destination(self, rng: random.Random, origin: int, min_m: float, max_m: float) -> int:
        """A node between min_m and max_m as the crow flies from origin."""
        o = self.nodes[origin]
        candidates = [k for k, p in enumerate(self.nodes) if min_m <= distance_m(o, p) <= max_m]
        if not candidates:
            return self.random_node(rng)
        return rng.choice(candidates)

    def route(self, a: int, c: int) -> list[Point]:
        """The shortest street path from node a to node c (A*)."""
        if a == c:
            return [self.nodes[a]]
        goal = self.nodes[c]
        best = {a: 0.0}
        came: dict[int, int] = {}
        frontier = [(distance_m(self.nodes[a], goal), a)]
        while frontier:
            _, n = heapq.heappop(frontier)
            if n == c:
                break
            for m in self.edges[n]:
                cost = best[n] + distance_m(self.nodes[n], self.nodes[m])
                if cost < best.get(m, math.inf):
                    best[m] = cost
                    came[m] = n
                    heapq.heappush(frontier, (cost + distance_m(self.nodes[m], goal), m))
        if c not in came:
            return [self.nodes[a], goal]
        path = [c]
        while path[-1] != a:
            path.append(came[path[-1]])
        return [self.nodes[k] for k in reversed(path)]

    def route_between(self, start: Point, end: Point) -> list[Point]:
        """From any point to any point: to the nearest street, along it, off at the end."""
        path = self.route(self.nearest(start), self.nearest(end))
        return [start, *path, end]


def point_json(p: Point) -> dict[str, float]:
    return {"lat": round(p[0], 6), "lon": round(p[1], 6)}


def json_point(d: dict) -> Point:
    return (float(d["lat"]), float(d["lon"]))


class Vehicle:
    """A position moving along a polyline at a given speed."""

    def __init__(self, position: Point) -> None:
        self.position = position
        self.heading = 0.0
        self.speed_mps = 0.0
        self._path: list[Point] = []
        self.arrived = asyncio.Event()
        self.arrived.set()

    def drive(self, path: list[Point], speed_mps: float) -> None:
        self._path = list(path[1:]) if path and path[0] == self.position else list(path)
        self.speed_mps = speed_mps
        self.arrived.clear()
        if not self._path:
            self.arrived.set()

    def stop(self) -> None:
        self._path = []
        self.speed_mps = 0.0
        self.arrived.set()

    @property
    def moving(self) -> bool:
        return bool(self._path)

    def advance(self, seconds: float) -> None:
        budget = self.speed_mps * seconds
        while self._path and budget > 0:
            target = self._path[0]
            d = distance_m(self.position, target)
            if d > 0:
                self.heading = heading_deg(self.position, target)
            if d <= budget:
                self.position = target
                self._path.pop(0)
                budget -= d
            else:
                t = budget / d
                self.position = (
                    self.position[0] + (target[0] - self.position[0]) * t,
                    self.position[1] + (target[1] - self.position[1]) * t,
                )
                budget = 0
        if not self._path:
            self.speed_mps = 0.0
            self.arrived.set()


# --------------------------------------------------------------------------
# Settings and counters
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CityConfig:
    gateway: str = "http://127.0.0.1:8080"
    drivers: int = 15
    riders: int = 20
    pace: float = 10.0
    duration_s: float = 0.0
    seed: int | None = None
    region: str = "sf"
    location_every_s: float = 2.0
    log_every_s: float = 15.0
    run_id: str = ""
    secret: str = "demo-city"
    start_timeout_s: float = 120.0

    def sim(self, seconds: float) -> float:
        """Real seconds for a span of simulated (real-life) seconds."""
        return seconds / self.pace

    @property
    def speed_mps(self) -> float:
        return BASE_SPEED_MPS * self.pace


def new_run_id() -> str:
    """Short, time-ordered, unique per run: restarts never collide."""
    alphabet = string.digits + string.ascii_lowercase
    n = int(time.time()) % 36**6
    out = ""
    for _ in range(6):
        n, r = divmod(n, 36)
        out = alphabet[r] + out
    return out + os.urandom(1).hex()


def parse_config(argv: list[str] | None = None, env: dict | None = None) -> CityConfig:
    env = dict(os.environ if env is None else env)

    def e(name: str, default: str) -> str:
        value = env.get(name)
        return default if value in (None, "") else value

    parser = argparse.ArgumentParser(
        prog="python -m deploy.city", description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--gateway", default=e("CITY_GATEWAY", "http://127.0.0.1:8080"))
    parser.add_argument("--drivers", type=int, default=int(e("CITY_DRIVERS", "15")))
    parser.add_argument("--riders", type=int, default=int(e("CITY_RIDERS", "20")))
    parser.add_argument("--pace", type=float, default=float(e("CITY_PACE", "10")))
    parser.add_argument("--duration", type=float, default=float(e("CITY_DURATION_S", "0")))
    parser.add_argument("--seed", type=int, default=int(e("CITY_SEED", "-1")))
    parser.add_argument("--region", default=e("CITY_REGION", "sf"))
    args = parser.parse_args(argv)
    if args.drivers < 0 or args.riders < 0:
        parser.error("--drivers and --riders must be 0 or more")
    if args.pace <= 0:
        parser.error("--pace must be positive")
    return CityConfig(
        gateway=args.gateway.rstrip("/"),
        drivers=args.drivers,
        riders=args.riders,
        pace=args.pace,
        duration_s=max(0.0, args.duration),
        seed=None if args.seed < 0 else args.seed,
        region=args.region,
        location_every_s=float(e("CITY_LOCATION_EVERY_S", "2")),
        log_every_s=float(e("CITY_LOG_EVERY_S", "15")),
        run_id=e("CITY_RUN_ID", "") or new_run_id(),
        secret=e("CITY_SECRET", "demo-city"),
    )


@dataclass
class Stats:
    counts: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    to_assigned_s: list[float] = field(default_factory=list)
    requests: int = 0

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def assigned_after(self, seconds: float) -> None:
        self.to_assigned_s.append(seconds)
        del self.to_assigned_s[:-500]


# --------------------------------------------------------------------------
# The HTTP client: what a mobile app's networking layer does
# --------------------------------------------------------------------------


@dataclass
class Reply:
    status: int  # 0: no answer (connection error or timeout)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def describe(self) -> str:
        if self.status == 0:
            return f"no answer ({self.body})"
        if isinstance(self.body, dict) and self.body.get("title"):
            fields = "; ".join(f"{e.get('field')}: {e.get('message')}"
                               for e in self.body.get("errors") or [])
            return (f"{self.status} {self.body.get('title')}: {self.body.get('detail', '')}"
                    + (f" ({fields})" if fields else ""))
        return str(self.status)


def backoff_s(attempt: int, retry_after: str | None = None) -> float:
    if retry_after:
        try:
            return min(MAX_BACKOFF_S * 2, max(0.1, float(retry_after)))
        except ValueError:
            pass
    return min(MAX_BACKOFF_S, 0.25 * 2**attempt) * random.uniform(0.6, 1.2)


class Api:
    """A thin client of the gateway with retries, shared by every user in the city."""

    def __init__(self, session, base: str, stats: Stats) -> None:
        self.session = session
        self.base = base
        self.stats = stats

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json_body: Any = None,
        params: dict | None = None,
        headers: dict | None = None,
        timeout_s: float = 10.0,
        attempts: int = 6,
    ) -> Reply:
        hdrs = {"X-Request-ID": uuid.uuid4().hex[:16], **(headers or {})}
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        reply = Reply(0)
        for attempt in range(attempts):
            self.stats.requests += 1
            try:
                async with self.session.request(
                    method,
                    self.base + path,
                    json=json_body,
                    params=params,
                    headers=hdrs,
                    timeout=aiohttp.ClientTimeout(total=timeout_s),
                ) as resp:
                    raw = await resp.read()
                    body: Any = None
                    if raw:
                        try:
                            body = json.loads(raw)
                        except ValueError:
                            body = raw[:200].decode(errors="replace")
                    reply = Reply(resp.status, body, dict(resp.headers))
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                reply = Reply(0, repr(exc)[:200])
            if reply.status and reply.status not in RETRY_STATUSES:
                if reply.status >= 400:
                    self.stats.statuses[reply.status] += 1
                return reply
            self.stats.statuses[reply.status or "no answer"] += 1
            if attempt + 1 < attempts:
                self.stats.add("retries")
                await asyncio.sleep(backoff_s(attempt, reply.headers.get("Retry-After")))
        return reply

    async def events(
        self, path: str, token: str, last_event_id: str | None, idle_timeout_s: float
    ) -> AsyncIterator[tuple[str | None, str, Any]]:
        """One SSE connection: yields (id, event, data) until the server closes it.

        Raises ConnectionError with the status when the answer is not a stream.
        """
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=idle_timeout_s)
        self.stats.requests += 1
        async with self.session.get(self.base + path, headers=headers, timeout=timeout) as resp:
            if resp.status != 200:
                self.stats.statuses[resp.status] += 1
                raise ConnectionError(resp.status, resp.headers.get("Retry-After"))
            event_id, event_type, data = None, "message", []
            async for raw in resp.content:
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not line:
                    if data:
                        text = "\n".join(data)
                        try:
                            payload: Any = json.loads(text)
                        except ValueError:
                            payload = text
                        yield event_id, event_type, payload
                    event_type, data = "message", []
                    continue
                if line.startswith(":"):
                    continue  # a keep-alive comment
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "id":
                    event_id = value
                elif name == "event":
                    event_type = value
                elif name == "data":
                    data.append(value)


# --------------------------------------------------------------------------
# People
# --------------------------------------------------------------------------

FIRST_NAMES = (
    "Ava", "Ben", "Carla", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jamal",
    "Kai", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq",
    "Uma", "Victor", "Wen", "Ximena", "Yusuf", "Zoe",
)
LAST_NAMES = (
    "Alvarez", "Brennan", "Chen", "Dubois", "Eze", "Fischer", "Garcia", "Haddad", "Ito",
    "Jensen", "Kowalski", "Lopez", "Moreau", "Nguyen", "Okafor", "Patel", "Rossi", "Silva",
    "Tanaka", "Usman", "Vargas", "Wong", "Yamamoto", "Zhang",
)
CARS = {
    "standard": [("Toyota", "Prius", 4), ("Toyota", "Camry", 4), ("Honda", "Accord", 4),
                 ("Tesla", "Model 3", 4), ("Chevrolet", "Bolt", 4), ("Hyundai", "Ioniq 5", 4)],
    "xl": [("Toyota", "Sienna", 6), ("Honda", "Odyssey", 7), ("Chevrolet", "Suburban", 7),
           ("Kia", "Carnival", 7), ("Tesla", "Model Y", 6)],
    "premium": [("Mercedes-Benz", "E-Class", 4), ("BMW", "5 Series", 4), ("Lexus", "ES", 4),
                ("Tesla", "Model S", 4), ("Audi", "A6", 4)],
}
COLORS = ("black", "white", "silver", "grey", "blue", "red", "green")
DRIVER_PRODUCTS = (("standard", 0.6), ("xl", 0.25), ("premium", 0.15))
RIDER_PRODUCTS = (("standard", 0.65), ("xl", 0.2), ("premium", 0.15))
COMMENTS = ("Great ride", "Friendly driver", "Clean car", "Smooth driving", "On time",
            "Thanks!", "Took a long way round", "")


def pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([w[0] for w in weighted], [w[1] for w in weighted])[0]


class SignedOut(Exception):
    """The account could not sign in; the user starts over after a pause."""


class Person:
    """What every app user does: an account, a session, calls that survive expiry."""

    kind = "person"

    def __init__(self, city: "City", number: int) -> None:
        self.city = city
        self.cfg = city.cfg
        self.api = city.api
        self.stats = city.stats
        self.graph = city.graph
        self.rng = random.Random(None if city.cfg.seed is None else city.cfg.seed * 7919 + number)
        self.number = number
        self.user_name = f"city.{self.kind[0]}.{self.cfg.run_id}.{number:03d}"
        self.password = hmac.new(
            self.cfg.secret.encode(), self.user_name.encode(), hashlib.sha256
        ).hexdigest()[:24]
        self.first_name = self.rng.choice(FIRST_NAMES)
        self.last_name = self.rng.choice(LAST_NAMES)
        self.token: str | None = None
        self.state = "starting"

    def profile(self) -> dict:
        raise NotImplementedError

    async def leave(self) -> None:
        """Called once at shutdown, after the person's task has stopped."""

    async def sign_in(self) -> None:
        reply = await self.api.call("POST", f"/v1/{self.kind}s", json_body=self.profile())
        if reply.status == 201:
            self.stats.add(f"{self.kind}s_signed_up")
        elif reply.status != 409:  # 409: the name is taken, by our earlier run: log in
            raise SignedOut(f"sign-up: {reply.describe()}")
        await self.log_in()

    async def log_in(self) -> None:
        reply = await self.api.call(
            "POST", "/v1/sessions",
            json_body={"user_name": self.user_name, "password": self.password},
        )
        if reply.status != 201 or not isinstance(reply.body, dict):
            raise SignedOut(f"log-in: {reply.describe()}")
        self.token = reply.body["token"]

    async def call(self, method: str, path: str, **kwargs) -> Reply:
        reply = await self.api.call(method, path, token=self.token, **kwargs)
        if reply.status == 401:
            await self.log_in()  # the session expired or was revoked
            reply = await self.api.call(method, path, token=self.token, **kwargs)
        return reply

    async def sleep(self, real_s: float) -> None:
        await asyncio.sleep(max(0.0, real_s))

    async def run(self) -> None:
        """Live until cancelled; any failure is logged and the day starts over."""
        failures = 0
        while True:
            try:
                if self.token is None:
                    await self.sign_in()
                await self.live()
                failures = 0
            except asyncio.CancelledError:
                raise
            except SignedOut as exc:
                failures += 1
                self.token = None
                self.state = "signed out"
                logger.warning("%s cannot sign in: %s", self.user_name, exc)
            except Exception:
                failures += 1
                logger.exception("%s: unexpected error; starting over", self.user_name)
                self.stats.add("errors")
            await self.sleep(backoff_s(min(failures, 6)))

    async def live(self) -> None:
        raise NotImplementedError


class Driver(Person):
    kind = "driver"

    def __init__(self, city: "City", number: int) -> None:
        super().__init__(city, number)
        self.product = pick(self.rng, DRIVER_PRODUCTS)
        make, model, seats = self.rng.choice(CARS[self.product])
        self.car = {
            "make": make,
            "model": model,
            "color": self.rng.choice(COLORS),
            "plate": f"{self.rng.randint(5, 9)}"
            f"{''.join(self.rng.choices(string.ascii_uppercase, k=3))}"
            f"{self.rng.randint(0, 999):03d}",
            "seats": seats,
        }
        self.vehicle = Vehicle(self.graph.nodes[self.graph.random_node(self.rng)])
        self.online = False
        self.trip_id: str | None = None
        self.cruising = True
        self._reporter: asyncio.Task | None = None

    def profile(self) -> dict:
        return {
            "user_name": self.user_name,
            "password": self.password,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": f"{self.user_name}@example.com",
            "car": self.car,
            "product": self.product,
            "region": self.cfg.region,
        }

    # The phone's GPS: report the position every few seconds, whatever else happens.
    async def report_location(self) -> None:
        every = self.cfg.location_every_s
        last = time.monotonic()
        while True:
            await asyncio.sleep(every * self.rng.uniform(0.9, 1.1))
            now = time.monotonic()
            try:
                self.vehicle.advance(now - last)
                if not self.vehicle.moving and self.trip_id is None and self.cruising:
                    self.cruise()
                if self.token is not None:
                    await self.put_location()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("%s: location update failed", self.user_name)
            last = now

    async def put_location(self) -> None:
        body = {
            **point_json(self.vehicle.position),
            "heading": round(self.vehicle.heading, 1) % 360.0,
            # The car's own speed, as its phone would measure it: the city
            # moves it `pace` times faster than that.
            "speed_mps": round(self.vehicle.speed_mps / self.cfg.pace, 1),
        }
        reply = await self.call("PUT", "/v1/driver/location", json_body=body, attempts=2)
        if reply.status == 204 or reply.status == 200:
            self.stats.add("location_updates")
        elif reply.status == 422:
            # Off the region somehow: back onto the nearest street of the city.
            self.stats.add("location_refused")
            logger.warning("%s: location refused: %s", self.user_name, reply.describe())
            self.vehicle.position = self.graph.nodes[self.graph.nearest(self.vehicle.position)]

    def cruise(self) -> None:
        """Idle drivers drift around their area, now and then parking a while."""
        if self.rng.random() < 0.4:
            return
        here = self.graph.nearest(self.vehicle.position)
        there = self.graph.destination(self.rng, here, 400, 1500)
        self.vehicle.drive(self.graph.route(here, there), self.cfg.speed_mps * 0.5)

    async def set_status(self, status: str) -> Reply:
        reply = await self.call("POST", "/v1/driver/status", json_body={"status": status})
        if reply.ok:
            self.online = status == "online"
            self.stats.add(f"went_{status}")
        return reply

    async def live(self) -> None:
        if self._reporter is None or self._reporter.done():
            self._reporter = asyncio.create_task(self.report_location())
        try:
            await self.put_location()
            # After a restart with the same CITY_RUN_ID, finish what was started.
            current = await self.call("GET", "/v1/driver/trip")
            if current.status == 200 and isinstance(current.body, dict):
                await self.do_trip(current.body)
            reply = await self.set_status("online")
            if not reply.ok:
                raise SignedOut(f"going online: {reply.describe()}")
            while True:
                self.state = "available"
                self.cruising = True
                reply = await self.call(
                    "GET", "/v1/driver/offers/next", params={"wait": "10"}, timeout_s=25
                )
                if reply.status == 204:
                    continue
                if reply.status != 200 or not isinstance(reply.body, dict):
                    logger.info("%s: offers/next %s", self.user_name, reply.describe())
                    await self.sleep(backoff_s(2))
                    continue
                self.stats.add("offers")
                await self.consider(reply.body)
                if self.rng.random() < 0.05:
                    await self.take_a_break()
        finally:
            self._reporter.cancel()
            await asyncio.gather(self._reporter, return_exceptions=True)
            self._reporter = None

    async def consider(self, offer: dict) -> None:
        trip_id = offer["trip_id"]
        self.state = "considering an offer"
        await self.sleep(self.rng.uniform(0.5, 3.0))
        roll = self.rng.random()
        if roll < 0.03:
            # The phone was in a pocket: the offer times out and goes to someone else.
            self.stats.add("offers_ignored")
            await self.sleep(self.seconds_until(offer.get("expires_at")) + 0.5)
            return
        if roll < 0.15:
            reply = await self.call("POST", f"/v1/driver/offers/{trip_id}/decline")
            self.stats.add("offers_declined" if reply.status == 204 else "offers_lost")
            return
        reply = await self.call("POST", f"/v1/driver/offers/{trip_id}/accept")
        if reply.status == 200 and isinstance(reply.body, dict):
            self.stats.add("offers_accepted")
            await self.do_trip(reply.body)
        elif reply.status in (404, 409):
            self.stats.add("offers_lost")  # expired, cancelled, or taken meanwhile
        else:
            logger.info("%s: accept %s: %s", self.user_name, trip_id, reply.describe())

    @staticmethod
    def seconds_until(iso: str | None) -> float:
        if not iso:
            return 15.0
        from datetime import datetime

        try:
            due = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 15.0
        return max(0.0, min(60.0, due - time.time()))

    async def still_mine(self, trip_id: str) -> bool:
        reply = await self.call("GET", "/v1/driver/trip")
        if reply.status == 200 and isinstance(reply.body, dict):
            return reply.body.get("id") == trip_id
        return reply.status != 204  # unsure (an error): keep going

    async def drive_to(self, target: Point, trip_id: str, *, may_be_cancelled: bool) -> bool:
        """Drive there; False if the rider cancelled on the way."""
        self.vehicle.drive(
            self.graph.route_between(self.vehicle.position, target), self.cfg.speed_mps
        )
        while not self.vehicle.arrived.is_set():
            try:
                await asyncio.wait_for(self.vehicle.arrived.wait(), 6.0)
            except asyncio.TimeoutError:
                if may_be_cancelled and not await self.still_mine(trip_id):
                    self.vehicle.stop()
                    return False
        return True

    async def transition(self, trip_id: str, action: str) -> bool:
        reply = await self.call("POST", f"/v1/trips/{trip_id}/{action}")
        if reply.status == 200:
            return True
        if reply.status == 409 and not await self.still_mine(trip_id):
            self.stats.add("trips_lost_to_rider")  # the rider cancelled meanwhile
            return False
        if reply.status == 409:
            return True  # a retried call that had already gone through
        logger.info("%s: %s %s: %s", self.user_name, action, trip_id, reply.describe())
        return False

    async def do_trip(self, trip: dict) -> None:
        trip_id = trip["id"]
        self.trip_id = trip_id
        self.cruising = False
        try:
            status = trip.get("status")
            pickup, dropoff = json_point(trip["pickup"]), json_point(trip["dropoff"])
            if status == "assigned":
                self.state = "to pickup"
                if self.rng.random() < 0.03:
                    # Sometimes the car breaks down: the trip goes back to the queue.
                    await self.sleep(self.rng.uniform(2, 6))
                    reply = await self.call(
                        "POST", f"/v1/trips/{trip_id}/cancel",
                        json_body={"reason": "vehicle problem"},
                    )
                    if reply.status == 200:
                        self.stats.add("driver_cancellations")
                        self.vehicle.stop()
                        return
                if not await self.drive_to(pickup, trip_id, may_be_cancelled=True):
                    self.stats.add("trips_lost_to_rider")
                    return
                if not await self.transition(trip_id, "arrive"):
                    return
                status = "arrived"
            if status == "arrived":
                self.state = "waiting for the rider"
                await self.sleep(self.cfg.sim(self.rng.uniform(20, 90)))
                if not await self.transition(trip_id, "start"):
                    return
                status = "in_progress"
            if status == "in_progress":
                self.state = "on a trip"
                await self.drive_to(dropoff, trip_id, may_be_cancelled=False)
                if await self.transition(trip_id, "complete"):
                    self.stats.add("trips_driven")
        finally:
            task = asyncio.current_task()
            if task is None or not task.cancelling():
                self.trip_id = None  # kept on shutdown: leave() finishes the trip
                self.cruising = True

    async def take_a_break(self) -> None:
        if (await self.set_status("offline")).ok:
            self.state = "on a break"
            self.vehicle.stop()
            await self.sleep(self.cfg.sim(self.rng.uniform(120, 360)))
        await self.set_status("online")

    async def leave(self) -> None:
        """At shutdown, leave nothing hanging (best effort): a passenger on board
        is dropped off, a trip not yet started goes back to the queue, then offline."""
        if not self.token:
            return
        if self.trip_id:
            reply = await self.api.call(
                "GET", "/v1/driver/trip", token=self.token, attempts=1, timeout_s=2
            )
            if reply.status == 200 and isinstance(reply.body, dict):
                trip_id, status = reply.body.get("id"), reply.body.get("status")
                if status == "in_progress":
                    await self.api.call("POST", f"/v1/trips/{trip_id}/complete",
                                        token=self.token, attempts=1, timeout_s=2)
                elif status in ("assigned", "arrived"):
                    await self.api.call("POST", f"/v1/trips/{trip_id}/cancel", token=self.token,
                                        json_body={"reason": "shift ended"}, attempts=1,
                                        timeout_s=2)
        if self.online:
            await self.api.call(
                "POST", "/v1/driver/status", token=self.token,
                json_body={"status": "offline"}, attempts=1, timeout_s=2,
            )


class Rider(Person):
    kind = "rider"

    def __init__(self, city: "City", number: int) -> None:
        super().__init__(city, number)
        self.trip: dict | None = None

    def profile(self) -> dict:
        body = {
            "user_name": self.user_name,
            "password": self.password,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": f"{self.user_name}@example.com",
            "age": self.rng.randint(18, 80),
            "region": self.cfg.region,
        }
        if self.rng.random() < 0.3:
            body["bio"] = self.rng.choice(("Commuter", "Night owl", "Visiting SF", "Student"))
        return body

    async def leave(self) -> None:
        """At shutdown: cancel a trip that has not started (best effort)."""
        trip = self.trip
        if self.token and trip and self.state in ("requested", "assigned", "arrived"):
            await self.api.call(
                "POST", f"/v1/trips/{trip['id']}/cancel", token=self.token,
                json_body={"reason": "left the app"}, attempts=1, timeout_s=2,
            )

    async def live(self) -> None:
        # After a restart with the same CITY_RUN_ID, follow the trip in progress.
        reply = await self.call("GET", "/v1/trips", params={"limit": "1"})
        if reply.status == 200 and isinstance(reply.body, dict):
            items = reply.body.get("items") or []
            if items and items[0].get("status") in ACTIVE:
                await self.follow(items[0])
        # First requests spread over the first minutes, then riders pace themselves.
        await self.sleep(self.rng.uniform(2, self.cfg.sim(300)))
        while True:
            self.state = "idle"
            await self.take_a_ride()
            await self.sleep(self.cfg.sim(self.rng.uniform(60, 300)))

    async def take_a_ride(self) -> None:
        origin = self.graph.random_node(self.rng)
        target = self.graph.destination(self.rng, origin, 500, 3000)
        pickup, dropoff = self.graph.nodes[origin], self.graph.nodes[target]
        self.state = "looking"
        await self.call(
            "GET", "/v1/drivers/nearby",
            params={"lat": str(pickup[0]), "lon": str(pickup[1]), "radius_m": "3000"},
        )
        places = {"pickup": point_json(pickup), "dropoff": point_json(dropoff)}
        estimates = await self.call("POST", "/v1/estimates", json_body=places)
        product = pick(self.rng, RIDER_PRODUCTS)
        if estimates.status == 200 and isinstance(estimates.body, dict):
            etas = {
                e.get("product"): e.get("pickup_eta_s")
                for e in estimates.body.get("estimates", [])
                if isinstance(e, dict)
            }
            if etas.get(product) is None:
                served = [p for p, eta in etas.items() if eta is not None]
                if served and self.rng.random() < 0.7:
                    product = self.rng.choice(served)
        await self.sleep(self.rng.uniform(1, 4))  # reading the prices
        key = str(uuid.uuid4())
        # The same Idempotency-Key on every retry: a lost answer never makes two trips.
        reply = await self.call(
            "POST", "/v1/trips", json_body={**places, "product": product},
            headers={"Idempotency-Key": key},
        )
        if reply.status == 201 and isinstance(reply.body, dict):
            self.stats.add("trips_requested")
            if reply.headers.get("Idempotent-Replayed"):
                self.stats.add("idempotent_replays")
            await self.follow(reply.body)
        elif reply.status == 409:
            # An active trip already exists (ours, from a retry or an earlier run).
            mine = await self.call("GET", "/v1/trips", params={"limit": "1"})
            if mine.status == 200 and isinstance(mine.body, dict):
                items = mine.body.get("items") or []
                if items and items[0].get("status") in ACTIVE:
                    await self.follow(items[0])
        else:
            logger.info("%s: request trip: %s", self.user_name, reply.describe())

    async def follow(self, trip: dict) -> None:
        """Watch the trip over SSE; cancel when patience runs out; rate at the end."""
        self.trip = trip
        trip_id = trip["id"]
        status = trip.get("status", "requested")
        requested_mono = time.monotonic()
        state = {"status": status, "assigned_seen": status != "requested"}
        done = asyncio.Event()
        self.state = status

        def on_status(new: str) -> None:
            state["status"] = new
            self.state = new
            if new == "assigned" and not state["assigned_seen"]:
                state["assigned_seen"] = True
                self.stats.assigned_after(time.monotonic() - requested_mono)
            if new in TERMINAL:
                done.set()

        tasks = [
            asyncio.create_task(self.watch(trip_id, on_status, done)),
            asyncio.create_task(self.impatience(trip_id, state, done)),
            asyncio.create_task(self.check_queue(trip_id, state, on_status, done)),
        ]
        try:
            await done.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.trip = None
        final = state["status"]
        self.stats.add(f"trips_{final}")
        if final == "completed" and self.rng.random() < 0.85:
            await self.sleep(self.rng.uniform(1, 5))
            stars = self.rng.choices((5, 4, 3, 2, 1), (60, 25, 9, 4, 2))[0]
            body: dict[str, Any] = {"stars": stars}
            comment = self.rng.choice(COMMENTS)
            if comment:
                body["comment"] = comment
            reply = await self.call("POST", f"/v1/trips/{trip_id}/rating", json_body=body)
            if reply.status == 200:
                self.stats.add("ratings")
        elif final == "expired":
            logger.info("%s: no driver took %s before it expired", self.user_name, trip_id)

    async def watch(self, trip_id: str, on_status, done: asyncio.Event) -> None:
        """The trip's event stream, reconnecting with Last-Event-ID."""
        last_id: str | None = None
        failures = 0
        while not done.is_set():
            try:
                async for event_id, event_type, _data in self.api.events(
                    f"/v1/trips/{trip_id}/events", self.token or "", last_id, 150.0
                ):
                    failures = 0
                    last_id = event_id or last_id
                    self.stats.add("sse_events")
                    if event_type in EVENT_STATUS:
                        on_status(EVENT_STATUS[event_type])
                    if done.is_set():
                        return
            except ConnectionError as exc:
                code = exc.args[0] if exc.args else 0
                if code == 401:
                    await self.log_in()
                elif code == 404:
                    return  # not ours any more: the queue check settles the status
            except (asyncio.TimeoutError, OSError) as exc:
                logger.debug("%s: event stream dropped: %r", self.user_name, exc)
            except Exception as exc:  # aiohttp.ClientError and friends
                logger.debug("%s: event stream error: %r", self.user_name, exc)
            if done.is_set():
                return
            failures += 1
            self.stats.add("sse_reconnects")
            await asyncio.sleep(backoff_s(min(failures, 5)))

    async def check_queue(self, trip_id: str, state: dict, on_status, done: asyncio.Event) -> None:
        """The app's trip screen: queue position, then the driver's car and ETA.

        Also the safety net if the event stream is down: the status comes
        from the trip itself.
        """
        while not done.is_set():
            await self.sleep(self.rng.uniform(6, 12))
            reply = await self.call("GET", f"/v1/trips/{trip_id}")
            if reply.status == 200 and isinstance(reply.body, dict):
                status = reply.body.get("status")
                if status and status != state["status"] and (
                    status in TERMINAL or state["status"] == "requested"
                ):
                    on_status(status)
            elif reply.status == 404:
                on_status("cancelled")

    async def impatience(self, trip_id: str, state: dict, done: asyncio.Event) -> None:
        """Some riders give up waiting; a few change their mind after a driver is found."""
        patience = self.cfg.sim(self.rng.uniform(90, 600))
        changes_mind = self.rng.random() < 0.04
        waited = 0.0
        while not done.is_set():
            await asyncio.sleep(1.0)
            waited += 1.0
            status = state["status"]
            give_up = status == "requested" and waited >= patience and self.rng.random() < 0.5
            if status == "requested" and waited >= patience and not give_up:
                patience = math.inf  # decided to wait it out
            mind = changes_mind and status in ("assigned", "arrived") and self.rng.random() < 0.2
            if give_up or mind:
                reason = "waited too long" if give_up else "plans changed"
                reply = await self.call(
                    "POST", f"/v1/trips/{trip_id}/cancel", json_body={"reason": reason}
                )
                if reply.status == 200:
                    state["status"] = "cancelled"
                    done.set()
                    return
                changes_mind = False
                patience = math.inf


# --------------------------------------------------------------------------
# The city
# --------------------------------------------------------------------------


class City:
    def __init__(self, cfg: CityConfig, graph: StreetGraph | None = None) -> None:
        self.cfg = cfg
        self.graph = graph or load_graph(cfg.region)
        self.stats = Stats()
        self.api: Api = None  # type: ignore[assignment]  # set in run()
        self.drivers: list[Driver] = []
        self.riders: list[Rider] = []
        self.started = time.monotonic()

    async def wait_for_gateway(self) -> bool:
        deadline = time.monotonic() + self.cfg.start_timeout_s
        said = False
        while time.monotonic() < deadline:
            reply = await self.api.call("GET", "/readyz", attempts=1, timeout_s=3)
            if reply.status == 200:
                return True
            if not said:
                logger.info("waiting for %s/readyz (%s)", self.cfg.gateway, reply.describe())
                said = True
            await asyncio.sleep(1.0)
        return False

    def summary(self) -> str:
        c = self.stats.counts
        drivers = self.drivers
        online = sum(1 for d in drivers if d.online)
        busy = sum(1 for d in drivers if d.trip_id)
        waiting = sum(1 for r in self.riders if r.state == "requested")
        riding = sum(1 for r in self.riders if r.state in ("assigned", "arrived", "in_progress"))
        waits = self.stats.to_assigned_s
        p50 = f"{statistics.median(waits):.1f}s" if waits else "-"
        errors = ", ".join(f"{k}x{v}" for k, v in sorted(self.stats.statuses.items(), key=str))
        return (
            f"city {time.monotonic() - self.started:5.0f}s | drivers {len(drivers)} "
            f"(online {online}, on a trip {busy}) riders {len(self.riders)} "
            f"(waiting {waiting}, riding {riding}) | trips requested {c['trips_requested']} "
            f"completed {c['trips_completed']} cancelled {c['trips_cancelled']} "
            f"expired {c['trips_expired']} rated {c['ratings']} | offers {c['offers']} "
            f"accepted {c['offers_accepted']} declined {c['offers_declined']} "
            f"ignored {c['offers_ignored']} lost {c['offers_lost']} | request-to-assigned "
            f"p50 {p50} | http {self.stats.requests} retries {c['retries']}"
            + (f" errors {errors}" if errors else "")
        )

    async def report(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.log_every_s)
            logger.info("%s", self.summary())

    async def run(self, stop: asyncio.Event) -> int:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
        async with aiohttp.ClientSession(connector=connector) as session:
            self.api = Api(session, self.cfg.gateway, self.stats)
            logger.info(
                "city %s: %d drivers, %d riders, pace x%g, region %s, %d street corners, "
                "gateway %s", self.cfg.run_id, self.cfg.drivers, self.cfg.riders, self.cfg.pace,
                self.cfg.region, len(self.graph.nodes), self.cfg.gateway,
            )
            if not await self.wait_for_gateway():
                logger.error("the gateway at %s never became ready", self.cfg.gateway)
                return 1
            self.drivers = [Driver(self, i) for i in range(self.cfg.drivers)]
            self.riders = [Rider(self, i) for i in range(self.cfg.riders)]
            tasks: list[asyncio.Task] = [asyncio.create_task(self.report())]
            # Drivers first, so the first riders find cars; spread the sign-ups out
            # (each one hashes a password).
            people: list[Person] = [*self.drivers, *self.riders]
            ramp_s = min(15.0, 0.3 * len(people))
            for k, person in enumerate(people):
                delay = ramp_s * k / max(1, len(people))
                tasks.append(asyncio.create_task(self.start_later(person, delay)))
            stopper = asyncio.create_task(stop.wait())
            if self.cfg.duration_s:
                timer = asyncio.create_task(asyncio.sleep(self.cfg.duration_s))
            else:
                timer = asyncio.create_task(asyncio.Event().wait())
            await asyncio.wait([stopper, timer], return_when=asyncio.FIRST_COMPLETED)
            logger.info("stopping: %s", self.summary())
            for task in [*tasks, stopper, timer]:
                task.cancel()
            await asyncio.gather(*tasks, stopper, timer, return_exceptions=True)
            # Riders first (a cancelled trip frees its driver), then drivers.
            for group in (self.riders, self.drivers):
                try:
                    await asyncio.wait_for(
                        asyncio.gather(*(p.leave() for p in group), return_exceptions=True), 3
                    )
                except asyncio.TimeoutError:
                    logger.warning("some %s did not sign off in time", type(group[0]).__name__)
        logger.info("stopped")
        return 0

    @staticmethod
    async def start_later(person: Person, delay: float) -> None:
        await asyncio.sleep(delay)
        await person.run()


def load_graph(region: str) -> StreetGraph:
    path = map_path(region)
    if path.exists():
        return StreetGraph.load(region)
    from common.regions import parse_regions

    for r in parse_regions(os.environ.get("REGIONS")):
        if r.name == region:
            return StreetGraph.plain(r.min_lat, r.min_lon, r.max_lat, r.max_lon)
    raise SystemExit(f"city: unknown region {region!r} (no basemap and not in REGIONS)")


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(argv)
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if cfg.seed is not None:
        random.seed(cfg.seed)

    async def amain() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await City(cfg).run(stop)

    return asyncio.run(amain())


if __name__ == "__main__":
    sys.exit(main())
