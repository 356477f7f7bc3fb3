"""The fare model: per product a base, a price per km and per minute, and a
minimum, on the great-circle distance and an estimated duration, times the
surge multiplier. Money is Decimal, rounded half-up to the cent, and leaves
the service as `{"amount": "12.40", "currency": "USD"}`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

CURRENCY = "USD"
CENT = Decimal("0.01")
# Average door-to-door speed in the city, for duration estimates and ETAs.
CITY_SPEED_MPS = 7.0


@dataclass(frozen=True, slots=True)
class FareModel:
    product: str
    base: Decimal
    per_km: Decimal
    per_minute: Decimal
    minimum: Decimal
    currency: str = CURRENCY

    def price(self, distance_m: float, duration_s: float, surge: Decimal | float = 1) -> Decimal:
        """The minimum applies before surge: a short trip in a surge costs more too."""
        raw = (
            self.base
            + self.per_km * Decimal(str(distance_m)) / 1000
            + self.per_minute * Decimal(str(duration_s)) / 60
        )
        total = max(raw, self.minimum) * Decimal(str(surge))
        return total.quantize(CENT, rounding=ROUND_HALF_UP)

    def money(self, distance_m: float, duration_s: float, surge: Decimal | float = 1) -> dict:
        return money(self.price(distance_m, duration_s, surge), self.currency)


FARE_MODELS: dict[str, FareModel] = {
    m.product: m
    for m in (
        FareModel("standard", Decimal("2.50"), Decimal("1.20"), Decimal("0.30"), Decimal("7.00")),
        FareModel("xl", Decimal("3.50"), Decimal("1.80"), Decimal("0.45"), Decimal("10.00")),
        FareModel("premium", Decimal("5.00"), Decimal("2.60"), Decimal("0.65"), Decimal("15.00")),
    )
}
PRODUCTS = tuple(FARE_MODELS)


def money(amount: Decimal, currency: str = CURRENCY) -> dict:
    return {"amount": str(amount.quantize(CENT, rounding=ROUND_HALF_UP)), "currency": currency}


def estimate_duration_s(distance_m: float) -> int:
    return int(math.ceil(distance_m / CITY_SPEED_MPS))


def eta_s(distance_m: float) -> int:
    """Seconds for a driver this far away to reach a pickup."""
    return int(math.ceil(distance_m / CITY_SPEED_MPS))
