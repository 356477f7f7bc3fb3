"""Accounts and sessions: sign-ups, logins, password changes, profiles."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    Field,
    StringConstraints,
    field_validator,
)

from common.models import Product

from .base import Body, Car, Email, FreeText, IsoTime, JsonInt, Name, Out, Password, Role, UserName, _check_email, _check_password, _check_region

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
