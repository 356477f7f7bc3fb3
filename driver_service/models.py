"""Bodies and queries of the internal HTTP API (docs/internals.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from common import ids
from common.models import OPS_LIST_LIMIT, PageQuery, Point, Product

__all__ = ["PageQuery", "Point", "Product"]


class Car(BaseModel):
    make: str = Field(min_length=1, max_length=40)
    model: str = Field(min_length=1, max_length=40)
    color: str = Field(min_length=1, max_length=40)
    plate: str = Field(min_length=1, max_length=16)
    seats: int = Field(ge=1, le=8, strict=True)


class DriverBody(BaseModel):
    driver_id: str
    first_name: str = Field(min_length=1, max_length=64)
    last_name: str = Field(min_length=1, max_length=64)
    car: Car
    product: Product

    @field_validator("driver_id")
    @classmethod
    def _driver(cls, value: str) -> str:
        if not ids.is_id(value, ids.DRIVER):
            raise ValueError("must be a driver id (drv_<region>_<ULID>)")
        return value


class StatusBody(BaseModel):
    status: Literal["online", "offline"]


class LocationBody(BaseModel):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    heading: float | None = Field(default=None, ge=0, le=360, allow_inf_nan=False)
    speed_mps: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)


class WaitQuery(BaseModel):
    wait: float = Field(default=0, ge=0, le=20, allow_inf_nan=False)


class ReasonBody(BaseModel):
    reason: str | None = Field(default=None, max_length=500)


class NearbyQuery(BaseModel):
    region: str = Field(min_length=1, max_length=16)
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    radius_m: float = Field(default=3000, gt=0, le=50_000, allow_inf_nan=False)
    product: Product | None = None


class OverviewQuery(BaseModel):
    locations_limit: int = Field(default=OPS_LIST_LIMIT, ge=0, le=OPS_LIST_LIMIT)


class EtaBody(BaseModel):
    region: str = Field(min_length=1, max_length=16)
    pickup: Point
