"""The public API's shapes: the pydantic models that validate requests and
describe responses. /openapi.json is generated from these same classes.

Request bodies are strict (no string-to-number coercion, no float-to-int),
ignore unknown members, and never have a field the server owns (ids, status,
fare, driver). Query models are lax because query values arrive as strings.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    create_model,
    field_validator,
)

from common.fares import CATALOG
from common.geo import haversine_m
from common.models import OPS_LIST_LIMIT, Product
from common.trip.statemachine import ACTIVE, TRANSITIONS, Status, in_order

from .passwords import MIN_LENGTH as MIN_PASSWORD_LENGTH
from .passwords import problems as password_problems

Role = Literal["rider", "driver", "ops"]
# The literals come from the trip's state machine (common/trip/statemachine.py).
TripStatus = Literal[tuple(s.value for s in Status)]  # type: ignore[valid-type]
ActiveStatus = Literal[tuple(s.value for s in in_order(ACTIVE))]  # type: ignore[valid-type]

# The WHATWG "valid e-mail address": what browsers accept in <input type=email>.
EMAIL_RE = re.compile(
    r"^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
    r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)+$"
)

UserName = Annotated[
    str,
    StringConstraints(min_length=3, max_length=32, pattern=r"^[a-z0-9_.-]+$"),
    Field(description="3-32 characters of `[a-z0-9_.-]`; unique."),
]
Password = Annotated[
    str,
    Field(
        min_length=MIN_PASSWORD_LENGTH,
        max_length=256,
        description=f"At least {MIN_PASSWORD_LENGTH} characters (at most 256), not one of "
        "the 30,000 most common passwords, not the user name.",
    ),
]


def _check_password(value: str, info: ValidationInfo) -> str:
    found = password_problems(value, (info.data or {}).get("user_name") or "")
    if found:
        raise ValueError(found)
    return value


# Characters a person cannot see or that reorder what they see: controls
# (Cc), format characters (Cf: zero-width spaces and joiners, the bidi
# embeddings, overrides and isolates, the byte-order mark), line and paragraph
# separators, surrogates. Stored, they let one name pass for another or turn a
# text around in someone else's screen.
_INVISIBLE = frozenset(("Cc", "Cf", "Cs", "Zl", "Zp"))


def _invisible_class(allowed: str = "") -> str:
    """The same rule as a regular-expression class for the OpenAPI document,
    so a client (or a fuzzer) knows what the server refuses: the code points
    of those categories, as literal ranges (no escapes: valid in Python's and
    ECMAScript's dialects alike)."""
    ranges, start = [], None
    for cp in range(0x110000):
        ch = chr(cp)
        # Surrogates cannot stand in a JSON text (nor reach the validator).
        bad = (ch not in allowed and unicodedata.category(ch) in _INVISIBLE
               and not 0xD800 <= cp <= 0xDFFF)
        if bad and start is None:
            start = cp
        elif not bad and start is not None:
            ranges.append((start, cp - 1))
            start = None
    return "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in ranges)


_BAD = _invisible_class()


def _name_pattern(most: int) -> str:
    """Names: white space around is stripped first; then 1 to `most` visible
    characters must remain (the length is in the pattern, since a schema's
    maxLength would count the white space the server strips)."""
    return rf"^\s*[^{_BAD}\s](?:[^{_BAD}]{{0,{most - 2}}}[^{_BAD}\s])?\s*$"


def _visible_name(most: int):
    def check(value: str) -> str:
        if not 1 <= len(value) <= most:
            raise ValueError(f"must be 1 to {most} characters long (white space around "
                             "does not count)")
        return _visible(value)

    return check
_VISIBLE_TEXT_PATTERN = rf"^[^{_invisible_class(allowed=chr(10) + chr(9))}]*$"


def _visible(value: str, allowed: str = "") -> str:
    for ch in value:
        if ch not in allowed and unicodedata.category(ch) in _INVISIBLE:
            raise ValueError(
                f"must not contain control, zero-width or text-direction characters "
                f"(found U+{ord(ch):04X})"
            )
    return value


def _visible_text(value: str) -> str:
    # Free text may run over several lines.
    return _visible(value, allowed="\n\t")


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True),
    AfterValidator(_visible_name(64)),
    Field(json_schema_extra={"pattern": _name_pattern(64)}),
]
CarText = Annotated[
    str,
    StringConstraints(strip_whitespace=True),
    AfterValidator(_visible_name(40)),
    Field(json_schema_extra={"pattern": _name_pattern(40)}),
]
FreeText = Annotated[
    str,
    StringConstraints(max_length=500),
    AfterValidator(_visible_text),
    Field(json_schema_extra={"pattern": _VISIBLE_TEXT_PATTERN}),
]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254),
    Field(
        description="A valid e-mail address (the WHATWG rule of `<input type=email>`).",
        examples=["ada@example.com"],
        json_schema_extra={"pattern": EMAIL_RE.pattern},
    ),
]
IsoTime = Annotated[
    str, Field(description="ISO 8601 UTC with milliseconds.", examples=["2026-11-27T10:00:00.123Z"])
]


def _integral(value: Any) -> Any:
    """A JSON number with no fractional part is an integer (JSON Schema says
    so: `8.0` is valid for `type: integer`); anything else is left to the
    strict check (strings, booleans and 8.5 stay invalid)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer member of a request body: 8 or 8.0, never "8", true or 8.5.
JsonInt = Annotated[int, BeforeValidator(_integral)]


class Body(BaseModel):
    """A request body: strict types, unknown members ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")


class Out(BaseModel):
    """A response shape (documentation and tests; handlers build plain dicts)."""

    model_config = ConfigDict(extra="allow")


def _check_email(value: str) -> str:
    if not EMAIL_RE.match(value):
        raise ValueError("must be a valid e-mail address")
    return value


def _check_region(value: str | None, info: ValidationInfo) -> str | None:
    regions = (info.context or {}).get("regions")
    if value is not None and regions is not None and value not in regions:
        raise ValueError(f"unknown region; one of: {', '.join(regions)}")
    return value


def _check_in_region(value: "Point", info: ValidationInfo) -> "Point":
    region = (info.context or {}).get("home_region")
    if region is not None and not region.contains(value.lat, value.lon):
        raise ValueError(f"must be inside the service area of region {region.name!r}")
    return value


def _check_reach(value: "Point", info: ValidationInfo) -> "Point":
    """The drop-off within `MAX_TRIP_DISTANCE_M` of the pickup, in a straight line."""
    limit = (info.context or {}).get("max_trip_distance_m")
    pickup = info.data.get("pickup")
    if limit is None or pickup is None:
        return value
    distance = haversine_m(pickup.lat, pickup.lon, value.lat, value.lon)
    if distance > limit:
        raise ValueError(
            f"must be within {limit / 1000:g} km of the pickup in a straight line "
            f"(it is {distance / 1000:,.1f} km away)"
        )
    return value


# --- values ------------------------------------------------------------------
class Point(Body):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, examples=[37.7749])
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, examples=[-122.4194])


class Money(Out):
    amount: str = Field(description="A decimal string.", examples=["12.40"])
    currency: str = Field(examples=["USD"])


class Car(Body):
    make: CarText
    model: CarText
    color: CarText
    plate: Annotated[
        str,
        StringConstraints(
            strip_whitespace=True, min_length=1, max_length=16, pattern=r"^[A-Za-z0-9 -]+$"
        ),
    ]
    seats: JsonInt = Field(ge=1, le=8)


# --- accounts and sessions ----------------------------------------------------
class RiderSignup(Body):
    user_name: UserName
    password: Password
    first_name: Name
    last_name: Name
    email: Email
    age: JsonInt = Field(gt=0, le=150, description="A positive integer (at most 150).")
    bio: FreeText | None = None
    region: str | None = Field(
        None, description="Home region; the first configured region when absent."
    )

    _email = field_validator("email")(_check_email)
    _region = field_validator("region")(_check_region)
    _password = field_validator("password")(_check_password)


class DriverSignup(Body):
    user_name: UserName
    password: Password
    first_name: Name
    last_name: Name
    email: Email
    car: Car
    product: Product
    region: str | None = Field(
        None, description="Home region; the first configured region when absent."
    )

    _email = field_validator("email")(_check_email)
    _region = field_validator("region")(_check_region)
    _password = field_validator("password")(_check_password)


class Login(Body):
    user_name: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class PasswordChange(Body):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    new_password: Password

    _password = field_validator("new_password")(_check_password)


class Session(Out):
    token: str = Field(description="Opaque bearer token; send as `Authorization: Bearer <token>`.")
    role: Role
    subject_id: str
    expires_at: IsoTime = Field(
        description="When the session ends if unused: each authenticated request slides it "
        "forward by the session TTL, up to an absolute limit from sign-in."
    )


class RiderProfile(Out):
    id: str
    role: Literal["rider"]
    user_name: str
    first_name: str
    last_name: str
    email: str
    age: int
    bio: str | None = None
    region: str
    created_at: IsoTime


class Location(Out):
    lat: float
    lon: float
    heading: float | None = None
    speed_mps: float | None = None
    updated_at: IsoTime | None = None


class CarOut(Out):
    make: str
    model: str
    color: str
    plate: str
    seats: int


class DriverProfile(Out):
    id: str
    role: Literal["driver"]
    user_name: str
    first_name: str
    last_name: str
    email: str
    region: str
    created_at: IsoTime
    car: CarOut
    product: Product
    status: Literal["offline", "online"]
    available: bool | None = Field(
        None, description="Online, located, with no trip and no open offer: can get offers."
    )
    active_trip_id: str | None = Field(None, description="The trip the driver is on, if any.")
    rating: float | None = Field(None, description="Average stars; null before the first rating.")
    location: Location | None = None


class OpsProfile(Out):
    id: str
    role: Literal["ops"]
    user_name: str
    created_at: IsoTime | None = None


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


# --- hot, warm, cold ----------------------------------------------------------
class RedisMemory(Out):
    used_bytes: int = Field(description="Memory Redis uses (INFO memory `used_memory`).")
    max_bytes: int | None = Field(
        description="`maxmemory` (`REDIS_MAXMEMORY` on the embedded server); null: no limit. "
        "At the limit, writes are refused (503 with Retry-After), never evicted."
    )
    policy: str | None = Field(description="`maxmemory-policy`: `noeviction` here.")


class ArchiveStatus(Out):
    due: int = Field(description="Finished trips past `HOT_RETENTION_S`, still in Redis.")
    lag_s: float = Field(description="How long the oldest due trip has been waiting to go cold.")
    hot_retention_s: float = Field(description="`HOT_RETENTION_S`.")


class ColdCounts(Out):
    reachable: bool = Field(description="False while trip_service cannot reach PostgreSQL "
                            "(cold reads are 503 then; everything hot is served).")
    trips: int | None = Field(None, description="Trips in the cold store.")
    events: int | None = Field(None, description="Their events.")


class Storage(Out):
    redis_memory: RedisMemory
    archive: ArchiveStatus
    cold_store: ColdCounts | None = Field(None, description="Absent without a cold store.")


class AnalyticsQuery(BaseModel):
    # An unknown parameter is a 422 naming it: nothing else filters this report.
    model_config = ConfigDict(extra="forbid")

    days: int = Field(7, ge=1, le=90, description="Trips requested in the last `days` days.")


class AnalyticsDay(Out):
    day: str = Field(description="UTC date, `YYYY-MM-DD`.")
    by_outcome: dict[str, int] = Field(description="Trips by outcome: completed, cancelled, "
                                       "expired.")
    revenue: Money = Field(description="Fares of the completed trips.")


class AnalyticsProduct(Out):
    product: str
    trips: int
    by_outcome: dict[str, int]
    revenue: Money
    average_rating: float | None = Field(description="Of the rated trips; null if none.")
    request_to_assigned_s: dict[str, float | None] = Field(
        description="Seconds from request to a driver's accept: `p50`, `p90`, `p99`."
    )
    cancelled_by: dict[str, int] = Field(description="Cancelled trips by who cancelled.")


class Analytics(Out):
    days: int
    per_day: list[AnalyticsDay]
    per_product: list[AnalyticsProduct]


class OpsOverview(Out):
    trips_by_status: dict[str, int] | None = None
    trips_by_region: dict[str, dict[str, int]] | None = Field(
        None, description="Trips by status in each region."
    )
    pending_total: dict[str, int] | None = Field(
        None, description="Requested trips waiting, by product."
    )
    pending: list[PendingTrip] | None = Field(
        None, description="The pending queue in rank order (oldest first), with waiting times."
    )
    active_trips: list[ActiveTrip] | None = Field(
        None,
        description=f"Trips requested, assigned, arrived or in progress, oldest request "
        f"first, at most {OPS_LIST_LIMIT:,} (all regions together): trip_service's index "
        "of active trips, kept in the same atomic step as each status change.",
    )
    active_trips_total: int | None = Field(
        None, description="Active trips; more than `active_trips` holds when it is capped."
    )
    drivers: OpsDrivers | None = Field(
        None, description="Drivers online and available by product, and where they are."
    )
    open_offers: int | None = None
    consumer_groups: list[ConsumerGroup] | None = Field(
        None, description="Lag and pending count of every consumer group."
    )
    dead_letters: int | None = None
    streams: list[StreamInfo] | None = None
    events_per_s: float | None = Field(
        None,
        description="Events added to the region streams per second, summed over the "
        "regions, over about the last 10 s: from samples of each stream's entries-added "
        "counter kept in Redis, so the same for every gateway. Null until a sample a "
        "second old exists, or when driver_service did not answer.",
    )
    regions: list[Region] = Field(description="The service area.")
    offer_timeout_s: float = Field(description="`OFFER_TIMEOUT_S`.")
    trip_expiry_s: float = Field(description="`TRIP_EXPIRY_S`.")
    dispatch_radius_m: float = Field(description="`DISPATCH_RADIUS_M`.")
    sse_clients: int = Field(description="SSE clients of this gateway process.")
    missing: list[str] | None = Field(
        None, description="Parts whose service did not answer: `trips`, `drivers`."
    )
    storage: Storage | None = Field(
        None, description="Redis memory against its limit, the archive and the cold store "
        "(trip_service)."
    )


class EventEnvelope(Out):
    """An event as the streams carry it (the `data:` of an SSE message)."""

    id: str = Field(description="The event id (ULID), unique per event.")
    type: str = Field(description="e.g. `trip.assigned`.")
    version: int
    occurred_at: IsoTime
    producer: str = Field(description="The service that made the change.")
    trace_id: str
    trip_id: str | None = None
    driver_id: str | None = None
    data: dict[str, Any] = Field(description="The event's own fields.")


class TopologyNode(Out):
    id: str = Field(description="The node's cluster id.")
    address: str = Field(description="host:port.")
    role: Literal["primary", "replica", "stale primary"] = Field(
        description="`stale primary`: a master that is not the shard's primary (one that "
        "failed and is still listed, or a paused one that has not yet learnt of its "
        "successor)."
    )
    follows: str | None = Field(description="The primary it replicates (address).")
    replication_offset: int | None = Field(
        description="Its replication offset, from its own answer (null when it did not answer)."
    )
    lag_bytes: int | None = Field(
        description="Bytes of the replication stream it is behind its primary, from the two "
        "nodes' answers in the same poll (null for a primary)."
    )
    health: str | None = Field(
        description="The cluster's view of the node, as most nodes say: `online`, `fail`, "
        "`loading`."
    )
    reachable: bool = Field(description="It answered this gateway's last poll.")
    link: Literal["up", "down"] | None = Field(
        description="A replica's link to its primary: up when the replica answers and sees "
        "an online primary (null for a primary)."
    )


class TopologyShard(Out):
    id: str
    slots: list[list[int]] = Field(description="Hash-slot ranges, [first, last].")
    regions: list[str] = Field(description="The regions whose keys (hash tag) live here.")
    primary: str | None = Field(description="The address of the primary; null while none answers.")
    no_primary_for_s: float | None = Field(
        description="While the shard has no primary: for how long (since the last poll "
        "that found one)."
    )
    nodes: list[TopologyNode]


class Failover(Out):
    at: IsoTime = Field(description="When this gateway first saw the new primary.")
    shard: str
    regions: list[str]
    failed: str | None = Field(description="The primary before (address).")
    promoted: str = Field(description="The primary after (address).")
    no_primary_s: float = Field(
        description="How long the shard had no answering primary, measured between polls: "
        "from the last poll that found the old one to the first that found the new one "
        "(an upper bound: the gap began up to one poll interval and one poll timeout "
        "later; polls come five times as often while a shard has no primary)."
    )


class OpsTopology(Out):
    mode: Literal["one server", "cluster"] = Field(
        description="`one server`: a single Redis, no shards or replicas to show."
    )
    polled_at: IsoTime | None = Field(description="The last poll of the nodes.")
    poll_interval_s: float | None = Field(description="`TOPOLOGY_POLL_S`.")
    shards: list[TopologyShard] = Field(description="By first slot.")
    failovers: list[Failover] = Field(
        description="Failovers this gateway process saw, newest first, at most 50."
    )
    problem: str | None = Field(
        description="Why the last poll found nothing: no node answered (e.g. the gateway's "
        "Redis user may not run CLUSTER SHARDS), or not polled yet."
    )


class SseMessage(Out):
    """One server-sent event, as it appears on the wire: an SSE `data:` line
    is text, here the event envelope as JSON."""

    id: str = Field(description="The stream entry id; send back as `Last-Event-ID` to resume.")
    event: str = Field(description="The event type, e.g. `trip.assigned`.")
    data: str = Field(
        description="The event envelope as JSON: `{id, type, version, occurred_at, producer, "
        "trace_id, trip_id?, driver_id?, data}`.",
        json_schema_extra={
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/EventEnvelope"},
        },
    )


# --- ops: the recent past (gateway/history.py) ----------------------------------
class HistoryMinute(Out):
    at: IsoTime = Field(description="The minute's start.")
    requested: int
    assigned: int
    completed: int
    cancelled: int
    expired: int
    to_assigned_p50_ms: int | None = Field(description="Request to assignment, median.")
    to_assigned_p95_ms: int | None
    fare_avg: str | None = Field(description="Mean final fare of the trips completed.")
    surge_avg: float | None = Field(description="Mean surge of the trips requested.")


class HistorySample(Out):
    at: IsoTime
    value: float


class RouteStats(Out):
    route: str = Field(description="`METHOD /path`.")
    requests: int
    errors: int = Field(description="5xx answers.")
    rejected: int = Field(description="4xx answers.")
    p50_ms: float | None = Field(description="Upper bound of the histogram bucket holding it.")
    p95_ms: float | None


class OpsHistory(Out):
    since: IsoTime = Field(description="When this gateway began counting: the current run.")
    minute_s: int
    run: dict[str, int] = Field(
        description="Trips requested, assigned, completed, cancelled and expired since `since`."
    )
    minutes: list[HistoryMinute] = Field(description="The last hour, oldest first.")
    events_per_s: list[HistorySample] = Field(description="Every 10 s, the last 20 minutes.")
    routes: list[RouteStats] = Field(
        description="This gateway's routes over `route_window_s`, busiest first; long polls "
        "and event streams left out (they wait by design)."
    )
    route_window_s: int


# --- the vocabulary (GET /v1/vocabulary) -----------------------------------------
class VocabularyStatus(Out):
    name: TripStatus
    active: bool = Field(description="The trip still runs (its rider holds one active trip).")
    terminal: bool = Field(description="Nothing changes it any more but a rating.")
    with_driver: bool = Field(description="A driver holds the trip: `driver_id` is theirs.")


class VocabularyEvent(Out):
    type: str = Field(description="e.g. `trip.assigned`.")
    status: TripStatus | None = Field(
        description="The trip's status after the event; null: unchanged."
    )
    public: bool = Field(
        description="False for dispatch's own events (offers, their declines and expiries), "
        "which riders never see."
    )


class VocabularyTransition(Out):
    action: str
    from_: list[TripStatus] = Field(alias="from", description="The statuses it leaves.")
    to: TripStatus
    actor: Literal[tuple(sorted({t.actor for t in TRANSITIONS.values()}))]  # type: ignore[valid-type]


class VocabularyProduct(Out):
    name: Product
    seats: int = Field(description="The seats a rider of the product can count on.")
    currency: str
    base: str = Field(description="Decimal string, like every amount of money.")
    per_km: str
    per_minute: str
    minimum: str = Field(description="Applies before surge.")


class Vocabulary(Out):
    trip_statuses: list[VocabularyStatus] = Field(description="In lifecycle order.")
    trip_events: list[VocabularyEvent] = Field(description="Every trip event type.")
    transitions: list[VocabularyTransition]
    products: list[VocabularyProduct] = Field(description="With their fares, in the order "
                                              "the API lists products.")
