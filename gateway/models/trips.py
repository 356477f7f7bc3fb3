"""A rider's trips: estimates, requests, the trip, its list, cancels, ratings, its timeline, nearby drivers."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
    field_validator,
)

from common.models import Product

from .base import Body, FreeText, IsoTime, JsonInt, Money, Out, Point, TripStatus, _check_in_region, _check_reach
from .accounts import CarOut, Location

# --- rider --------------------------------------------------------------------
class EstimateRequest(Body):
    pickup: Point
    dropoff: Point

    _pickup = field_validator("pickup")(_check_in_region)
    _dropoff = field_validator("dropoff")(_check_reach)


class Estimate(Out):
    product: Product
    fare: Money
    surge: float
    distance_m: float
    duration_s: float
    pickup_eta_s: float | None = Field(description="Null where no driver of the product is near.")


class Estimates(Out):
    estimates: list[Estimate]
    missing: list[str] | None = Field(
        None,
        description="Present when an optional part could not be fetched: `pickup_eta_s` "
        "(driver_service did not answer; every `pickup_eta_s` is then null).",
    )


class TripCreate(Body):
    pickup: Point
    dropoff: Point
    product: Product

    _pickup = field_validator("pickup")(_check_in_region)
    _dropoff = field_validator("dropoff")(_check_reach)


class Rating(Out):
    stars: int
    comment: str | None = None
    rated_at: IsoTime


class TripDriver(Out):
    id: str
    first_name: str
    rating: float | None = None
    car: CarOut
    location: Location | None = None
    pickup_eta_s: float | None = None


class Trip(Out):
    id: str
    status: TripStatus
    rider_id: str
    driver_id: str | None = Field(None, description="The assigned driver, once there is one.")
    product: Product
    pickup: Point
    dropoff: Point
    fare_estimate: Money
    surge: float
    distance_m: float | None = Field(None, description="Straight-line pickup to dropoff.")
    duration_s: float | None = Field(None, description="Estimated ride duration.")
    requested_at: IsoTime
    assigned_at: IsoTime | None = None
    arrived_at: IsoTime | None = None
    started_at: IsoTime | None = None
    completed_at: IsoTime | None = None
    cancelled_at: IsoTime | None = None
    cancelled_by: str | None = None
    cancel_reason: str | None = None
    expired_at: IsoTime | None = None
    fare: Money | None = None
    queue_position: int | None = Field(
        None,
        description="While requested: the place among the requested trips of the region "
        "and product, oldest first (1 = next to be offered).",
    )
    driver: TripDriver | None = Field(
        None,
        description="GET /v1/trips/{id} only, once a driver is assigned. Null with "
        "`missing: [\"driver\"]` when driver_service could not be reached.",
    )
    rating: Rating | None = None
    missing: list[str] | None = Field(
        None, description="Optional parts that could not be fetched (partial answer)."
    )


class TripList(Out):
    items: list[Trip]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at the end.")


class TripListQuery(BaseModel):
    limit: int = Field(20, ge=1, le=100)
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None


class CancelRequest(Body):
    reason: FreeText | None = None


class RatingRequest(Body):
    stars: JsonInt = Field(ge=1, le=5)
    comment: FreeText | None = None


class Delivery(Out):
    group: str
    consumer: str
    delivered_at: IsoTime | None
    acked_at: IsoTime | None
    attempts: int


class TimelineEvent(Out):
    id: str = Field(description="The event id (ULID).")
    stream_id: str | None = Field(None, description="The stream entry id.")
    type: str
    occurred_at: IsoTime
    producer: str
    trace_id: str
    deliveries: list[Delivery] | None = Field(
        None,
        description="Ops only: the lifecycle of the message through each consumer group.",
    )


class Timeline(Out):
    trip_id: str
    events: list[TimelineEvent]


class NearbyQuery(BaseModel):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    radius_m: float = Field(3000, gt=0, le=50_000, allow_inf_nan=False)
    product: Product | None = None


class NearbyDriver(Out):
    distance_m: float
    location: Point
    product: Product
    pickup_eta_s: float | None = None


class Nearby(Out):
    count: int
    drivers: list[NearbyDriver]
