"""The service area: a configured list of regions (cities with bounds)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import orjson

_NAME = re.compile(r"^[a-z0-9]{1,16}$")


@dataclass(frozen=True, slots=True)
class Region:
    name: str
    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float

    def contains(self, lat: float, lon: float) -> bool:
        return self.min_lat <= lat <= self.max_lat and self.min_lon <= lon <= self.max_lon

    @property
    def center(self) -> tuple[float, float]:
        return ((self.min_lat + self.max_lat) / 2, (self.min_lon + self.max_lon) / 2)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "bounds": {
                "min_lat": self.min_lat,
                "min_lon": self.min_lon,
                "max_lat": self.max_lat,
                "max_lon": self.max_lon,
            },
        }


DEFAULT_REGIONS = (Region("sf", 37.70, -122.52, 37.83, -122.35),)


def parse_regions(text: str | None) -> tuple[Region, ...]:
    """Read `REGIONS`: a JSON list of `{name, min_lat, min_lon, max_lat, max_lon}`.

    Empty means the default demo city. The first region is the default home
    region of new riders and drivers.
    """
    if not text or not text.strip():
        return DEFAULT_REGIONS
    items = orjson.loads(text)
    if not isinstance(items, list) or not items:
        raise ValueError("REGIONS must be a non-empty JSON list")
    regions = []
    for item in items:
        name = item["name"]
        if not _NAME.match(name):
            raise ValueError(f"region name {name!r} must match [a-z0-9]{{1,16}}")
        region = Region(
            name,
            float(item["min_lat"]),
            float(item["min_lon"]),
            float(item["max_lat"]),
            float(item["max_lon"]),
        )
        if not (region.min_lat < region.max_lat and region.min_lon < region.max_lon):
            raise ValueError(f"region {name!r} has empty bounds")
        regions.append(region)
    if len({r.name for r in regions}) != len(regions):
        raise ValueError("REGIONS has duplicate names")
    return tuple(regions)


def regions_to_env(regions: tuple[Region, ...]) -> str:
    return orjson.dumps(
        [
            {
                "name": r.name,
                "min_lat": r.min_lat,
                "min_lon": r.min_lon,
                "max_lat": r.max_lat,
                "max_lon": r.max_lon,
            }
            for r in regions
        ]
    ).decode()


def region_errors(region: Region, point: dict, field: str) -> list[dict]:
    """422 entries for a point outside the region (one per coordinate)."""
    out = []
    if not region.min_lat <= point["lat"] <= region.max_lat:
        out.append({
            "field": f"{field}.lat",
            "message": f"outside region {region.name} "
            f"(latitude {region.min_lat} to {region.max_lat})",
        })
    if not region.min_lon <= point["lon"] <= region.max_lon:
        out.append({
            "field": f"{field}.lon",
            "message": f"outside region {region.name} "
            f"(longitude {region.min_lon} to {region.max_lon})",
        })
    return out
