"""Operations and errors: problems, health, readiness, the ops overview."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    create_model,
)

from common.fares import CATALOG
from common.models import OPS_LIST_LIMIT, Product

from .base import ActiveStatus, IsoTime, Out, Point
from .accounts import Location

# --- operations and errors ----------------------------------------------------
class FieldError(Out):
    field: str = Field(description="Dotted path of the member (`pickup.lat`), or a parameter name.")
    message: str


class Problem(Out):
    type: str
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldError] | None = None


class Health(Out):
    status: str


class Ready(Out):
    status: str
    checks: dict[str, str] | None = Field(
        None,
        description="Each dependency: `ok` or `down: <reason>`; only for the ops role and on "
        "the operations listener (OPS_PORT).",
    )


class Bounds(Out):
    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float


class Region(Out):
    name: str = Field(examples=["sf"])
    bounds: Bounds


class DriverCounts(Out):
    online: int
    available: int = Field(description="Online, located, not on a trip, without an open offer.")


class DriverPosition(Out):
    driver_id: str
    region: str
    product: Product
    status: Literal["available", "offered", "on_trip"] = Field(
        description="`offered`: holds an open offer; `on_trip`: holds a trip "
        "(assigned, arrived or in progress)."
    )
    location: Location
    trip_id: str | None = Field(
        None, description="The trip offered to the driver (`offered`) or held (`on_trip`)."
    )


# One member per product of the catalog (common/fares.py), then the positions.
OpsDrivers = create_model(
    "OpsDrivers",
    __base__=Out,
    __module__=__name__,
    **{name: (DriverCounts, ...) for name in CATALOG},
    locations=(list[DriverPosition], Field(
        description=f"Where the online drivers with a known location are, at most "
        f"{OPS_LIST_LIMIT:,} (all regions together), read from driver_service's index of "
        "online drivers and their documents."
    )),
    locations_total=(int, Field(
        description="Online drivers; more than `locations` holds when the list is capped "
        "or a driver has not reported a location yet."
    )),
)


class PendingTrip(Out):
    trip_id: str
    region: str
    product: Product
    queue_position: int = Field(description="Place in its region and product, 1 = next.")
    requested_at: IsoTime
    waiting_s: float
    offered_to: str | None = Field(None, description="The driver holding the open offer.")
    offer_expires_at: IsoTime | None = None


class ActiveTrip(Out):
    trip_id: str
    region: str
    status: ActiveStatus
    product: Product
    pickup: Point
    dropoff: Point
    driver_id: str | None = Field(None, description="Once a driver holds the trip.")
    offered_to: str | None = Field(
        None, description="While requested: the driver holding an open offer of it."
    )
    requested_at: IsoTime


class ConsumerGroup(Out):
    stream: str
    group: str
    consumers: int
    pending: int = Field(description="Delivered, not yet acknowledged.")
    lag: int | None = Field(description="Entries not yet delivered to the group.")
    last_delivered_id: str


class StreamInfo(Out):
    stream: str
    length: int
    entries_added: int | None = Field(description="Entries ever added (XINFO STREAM).")
    last_id: str | None
