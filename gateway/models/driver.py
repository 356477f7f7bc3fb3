"""A driver's status, location and offers."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    Field,
)

from common.models import Product

from .base import Body, IsoTime, Money, Out, Point

# --- driver -------------------------------------------------------------------
class DriverStatusRequest(Body):
    status: Literal["online", "offline"]


class LocationUpdate(Body):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    heading: float | None = Field(None, ge=0, lt=360, allow_inf_nan=False)
    speed_mps: float | None = Field(None, ge=0, le=100, allow_inf_nan=False)


class OffersQuery(BaseModel):
    wait: float = Field(
        0, ge=0, le=20, allow_inf_nan=False, description="Seconds to wait for an offer (long poll)."
    )


class Offer(Out):
    trip_id: str
    pickup: Point
    dropoff: Point
    product: Product
    fare_estimate: Money
    distance_to_pickup_m: float
    expires_at: IsoTime
