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


@dataclass(frozen=True, slots=True)
class Product:
    """A product riders choose and drivers serve: the one definition every
    list of products derives from (the gateway's models, the overviews'
    per-product counts, GET /v1/vocabulary)."""

    name: str
    # The seats a rider of the product can count on.
    seats: int
    fare: FareModel

    def describe(self) -> dict:
        m = self.fare
        return {
            "name": self.name,
            "seats": self.seats,
            "currency": m.currency,
            "base": str(m.base),
            "per_km": str(m.per_km),
            "per_minute": str(m.per_minute),
            "minimum": str(m.minimum),
        }


def _product(name: str, seats: int, base: str, per_km: str, per_minute: str,
             minimum: str) -> Product:
    fare = FareModel(name, Decimal(base), Decimal(per_km), Decimal(per_minute), Decimal(minimum))
    return Product(name, seats, fare)


# The order is the order in which products are listed everywhere.
CATALOG: dict[str, Product] = {
    p.name: p
    for p in (
        _product("standard", 4, "2.50", "1.20", "0.30", "7.00"),
        _product("xl", 6, "3.50", "1.80", "0.45", "10.00"),
        _product("premium", 4, "5.00", "2.60", "0.65", "15.00"),
    )
}
FARE_MODELS: dict[str, FareModel] = {name: p.fare for name, p in CATALOG.items()}
PRODUCTS = tuple(CATALOG)


def money(amount: Decimal, currency: str = CURRENCY) -> dict:
    return {"amount": str(amount.quantize(CENT, rounding=ROUND_HALF_UP)), "currency": currency}


def estimate_duration_s(distance_m: float) -> int:
    return int(math.ceil(distance_m / CITY_SPEED_MPS))


def eta_s(distance_m: float) -> int:
    """Seconds for a driver this far away to reach a pickup."""
    return int(math.ceil(distance_m / CITY_SPEED_MPS))
