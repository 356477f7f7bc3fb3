"""The demo region's streets: a lattice clipped to land, plus the arterials.

The street graph is built from the basemap the dashboard draws
(gateway/static/map-<region>.json); the load tests (tests/load) drive on it too.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import os
import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from common.regions import parse_regions
from deploy.sim.geometry import Point, distance_m, inside


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
    def load(cls, region: str = "sf") -> StreetGraph:
        data = json.loads(map_path(region).read_text())
        return cls.from_map(data)

    @classmethod
    def from_map(cls, data: dict) -> StreetGraph:
        b = data["bounds"]
        graph = cls(
            bounds=dict(b),
            land=[[tuple(p) for p in data["land"]]] if data.get("land") else [],
            water=[[tuple(p) for p in w["polygon"]] for w in data.get("water", [])],
        )
        graph._build(data["grid"]["lat_step"], data["grid"]["lon_step"], data.get("arterials", []))
        return graph

    @classmethod
    def plain(cls, min_lat: float, min_lon: float, max_lat: float, max_lon: float) -> StreetGraph:
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


def load_graph(region: str) -> StreetGraph:
    path = map_path(region)
    if path.exists():
        return StreetGraph.load(region)
    for r in parse_regions(os.environ.get("REGIONS")):
        if r.name == region:
            return StreetGraph.plain(r.min_lat, r.min_lon, r.max_lat, r.max_lon)
    raise SystemExit(f"city: unknown region {region!r} (no basemap and not in REGIONS)")
