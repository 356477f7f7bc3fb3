"""Shared types and validators: names, passwords, e-mail, times, points and money."""

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
)

from common.geo import haversine_m
from common.trip.statemachine import ACTIVE, Status, in_order

from ..passwords import MIN_LENGTH as MIN_PASSWORD_LENGTH
from ..passwords import problems as password_problems

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
