"""Shapes of the internal HTTP APIs that both services accept alike."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from .fares import PRODUCTS

Product = Literal[PRODUCTS]  # type: ignore[valid-type]  (the catalog's names)

# The ops overviews list at most this many active trips and this many driver
# positions (all regions together); the totals say how many there are.
OPS_LIST_LIMIT = 2000


class Point(BaseModel):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)

    def as_dict(self) -> dict:
        return {"lat": self.lat, "lon": self.lon}


class PageQuery(BaseModel):
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=512)
