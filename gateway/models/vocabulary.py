"""The vocabulary (GET /v1/vocabulary)."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
)

from common.models import Product
from common.trip.statemachine import TRANSITIONS

from .base import Out, TripStatus

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
