"""Points on the map: distance, heading, inside a polygon, and their JSON form."""

from __future__ import annotations

import math

from common.geo import haversine_m

Point = tuple[float, float]  # (lat, lon)


def distance_m(a: Point, b: Point) -> float:
    """Great-circle distance, by the one haversine of common.geo."""
    return haversine_m(a[0], a[1], b[0], b[1])


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


def point_json(p: Point) -> dict[str, float]:
    return {"lat": round(p[0], 6), "lon": round(p[1], 6)}


def json_point(d: dict) -> Point:
    return (float(d["lat"]), float(d["lon"]))
