"""Surge from demand and supply in the pickup's area.

Demand is the number of requested trips whose pickup lies in a geohash cell,
supply the number of available drivers there (the `demand`/`supply` hashes
that the transition scripts keep). While drivers outnumber requests the
price is plain; beyond that it rises with the ratio, in steps of 0.1, capped.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

SURGE_CAP = Decimal("3.0")
SURGE_STEP = Decimal("0.1")
# How fast the price rises with the ratio demand / supply beyond 1.
SENSITIVITY = Decimal("0.5")


def surge_multiplier(demand: int, supply: int) -> Decimal:
    """`demand` counts the request being priced."""
    demand, supply = max(demand, 0), max(supply, 0)
    if demand <= supply:
        return Decimal("1.0")
    ratio = Decimal(demand) / Decimal(max(supply, 1))
    value = Decimal(1) + SENSITIVITY * (ratio - 1)
    value = value.quantize(SURGE_STEP, rounding=ROUND_DOWN)
    return min(max(value, Decimal("1.0")), SURGE_CAP)
