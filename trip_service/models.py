"""Bodies and queries of the internal HTTP API (docs/internals.md)."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from common import ids
from common.models import OPS_LIST_LIMIT, Point, Product

ANALYTICS_MAX_DAYS = 90


def _rider(value: str) -> str:
    if not ids.is_id(value, ids.RIDER):
        raise ValueError("must be a rider id (rdr_<region>_<ULID>)")
    return value


class EstimateBody(BaseModel):
    region: str = Field(min_length=1, max_length=16)
    pickup: Point
    dropoff: Point


class TripBody(BaseModel):
    trip_id: str | None = None
    rider_id: str
    pickup: Point
    dropoff: Point
    product: Product

    _check_rider = field_validator("rider_id")(_rider)

    @field_validator("trip_id")
    @classmethod
    def _trip(cls, value: str | None) -> str | None:
        if value is not None and not ids.is_id(value, ids.TRIP):
            raise ValueError("must be a trip id (trp_<region>_<ULID>)")
        return value


class CancelBody(BaseModel):
    rider_id: str
    reason: str | None = Field(default=None, max_length=500)

    _check_rider = field_validator("rider_id")(_rider)


class RatingBody(BaseModel):
    rider_id: str
    stars: int = Field(ge=1, le=5, strict=True)
    comment: str | None = Field(default=None, max_length=500)

    _check_rider = field_validator("rider_id")(_rider)


class OverviewQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=500)
    active_limit: int = Field(default=OPS_LIST_LIMIT, ge=0, le=OPS_LIST_LIMIT)


class AnalyticsQuery(BaseModel):
    days: int = Field(default=7, ge=1, le=ANALYTICS_MAX_DAYS)
