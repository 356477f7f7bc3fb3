"""Geography helpers: great-circle distance and geohash cells.

The surge counters (`demand`/`supply` hashes) count per geohash cell; both
services must compute the same cell for a point, so the cell comes from here.
"""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_008.8
# Precision 5 cells are about 4.9 km x 4.9 km: an area a driver covers in a
# few minutes, coarse enough that counts are not noise.
SURGE_CELL_PRECISION = 5

_BASE32 = "0123456789bcdefghjkmnpqrstuvwxyz"


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def geohash(lat: float, lon: float, precision: int = SURGE_CELL_PRECISION) -> str:
    """The standard base-32 geohash of a point."""
    lat_lo, lat_hi = -90.0, 90.0
    lon_lo, lon_hi = -180.0, 180.0
    out = []
    bits = 0
    n_bits = 0
    even = True
    while len(out) < precision:
        if even:
            mid = (lon_lo + lon_hi) / 2
            if lon >= mid:
                bits = (bits << 1) | 1
                lon_lo = mid
            else:
                bits <<= 1
                lon_hi = mid
        else:
            mid = (lat_lo + lat_hi) / 2
            if lat >= mid:
                bits = (bits << 1) | 1
                lat_lo = mid
            else:
                bits <<= 1
                lat_hi = mid
        even = not even
        n_bits += 1
        if n_bits == 5:
            out.append(_BASE32[bits])
            bits = 0
            n_bits = 0
    return "".join(out)


def surge_cell(lat: float, lon: float) -> str:
    return geohash(lat, lon, SURGE_CELL_PRECISION)
