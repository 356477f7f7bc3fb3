"""The plain domain rules: state machine, fares, surge, matching, geo, cursors."""

from __future__ import annotations

from decimal import Decimal

import pytest

from common.fares import FARE_MODELS, estimate_duration_s, money
from common.geo import geohash, haversine_m, surge_cell
from common.pagination import decode_cursor, encode_cursor
from common.trip.statemachine import (
    ACTIVE,
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    Status,
    actions_from,
    allowed,
    next_status,
)
from driver_service.matching import (
    DRIVER_FREED,
    MIN_FIRST_RADIUS_M,
    RADIUS_STEPS_M,
    TRIP_WAITS,
    Candidate,
    eligible,
    first_radius,
    is_waiting,
    radius_steps,
    rank_order,
    search_count,
)
from trip_service.surge import SURGE_CAP, surge_multiplier

S = Status


def test_state_machine_is_the_api_one():
    edges = {(src, t.target) for t in TRANSITIONS.values() for src in t.sources}
    status_edges = {(a, b) for a, b in edges if a != b}
    assert status_edges == {
        (S.REQUESTED, S.ASSIGNED), (S.ASSIGNED, S.ARRIVED), (S.ARRIVED, S.IN_PROGRESS),
        (S.IN_PROGRESS, S.COMPLETED),
        (S.REQUESTED, S.CANCELLED), (S.ASSIGNED, S.CANCELLED), (S.ARRIVED, S.CANCELLED),
        (S.ASSIGNED, S.REQUESTED), (S.ARRIVED, S.REQUESTED),
        (S.REQUESTED, S.EXPIRED),
    }
    for status in TERMINAL:
        assert all(TRANSITIONS[a].target == status for a in actions_from(status))
    assert actions_from(S.CANCELLED) == [] and actions_from(S.EXPIRED) == []
    assert actions_from(S.COMPLETED) == ["rate"]
    assert ACTIVE | TERMINAL == set(Status)


@pytest.mark.parametrize("status", list(Status))
@pytest.mark.parametrize("action", sorted(TRANSITIONS))
def test_next_status_follows_the_table(status, action):
    if allowed(status, action):
        assert next_status(status, action) == TRANSITIONS[action].target
    else:
        with pytest.raises(IllegalTransition):
            next_status(status, action)


def test_fare_minimum_applies_to_short_trips():
    model = FARE_MODELS["standard"]
    assert model.price(100, 30) == model.minimum
    assert model.price(0, 0, surge=2) == model.minimum * 2


def test_fare_is_base_plus_distance_plus_time():
    model = FARE_MODELS["standard"]
    # 2.50 + 10 km * 1.20 + 20 min * 0.30 = 20.50
    assert model.price(10_000, 1200) == Decimal("20.50")
    assert model.price(10_000, 1200, surge=Decimal("1.5")) == Decimal("30.75")
    assert FARE_MODELS["premium"].price(10_000, 1200) > FARE_MODELS["xl"].price(10_000, 1200) \
        > model.price(10_000, 1200)


def test_money_is_a_decimal_string_with_cents():
    assert money(Decimal("12.4")) == {"amount": "12.40", "currency": "USD"}
    assert money(Decimal("0.005")) == {"amount": "0.01", "currency": "USD"}
    assert FARE_MODELS["xl"].money(5000, 600) == {"amount": "17.00", "currency": "USD"}


def test_duration_estimate_grows_with_distance():
    assert estimate_duration_s(0) == 0
    assert estimate_duration_s(7000) == 1000
    assert estimate_duration_s(14000) > estimate_duration_s(7000)


def test_surge_is_plain_while_supply_covers_demand():
    assert surge_multiplier(1, 0) == Decimal("1.0")
    assert surge_multiplier(5, 5) == Decimal("1.0")
    assert surge_multiplier(3, 10) == Decimal("1.0")


def test_surge_rises_when_demand_outgrows_supply():
    values = [surge_multiplier(d, 2) for d in range(2, 20)]
    assert values == sorted(values)
    assert values[-1] > Decimal("1.0")
    assert surge_multiplier(4, 2) == Decimal("1.5")
    assert surge_multiplier(6, 2) == Decimal("2.0")
    # More drivers bring it down again.
    assert surge_multiplier(6, 3) < surge_multiplier(6, 2)
    assert surge_multiplier(1000, 0) == SURGE_CAP


def test_candidates_are_tried_nearest_first_without_the_excluded():
    """The order the dispatcher offers a trip in (Dispatcher._eligible)."""
    cands = [Candidate("b", 300.0), Candidate("a", 120.0), Candidate("c", 90.0),
             Candidate("d", 120.0)]
    assert [c.driver_id for c in eligible(cands, set())] == ["c", "a", "d", "b"]
    assert [c.driver_id for c in eligible(cands, {"c", "d"})] == ["a", "b"]
    assert list(eligible(cands, {"a", "b", "c", "d"})) == []
    # Each search fetches enough to get past the drivers already excluded.
    assert search_count(3) - search_count(0) == 3


def test_the_first_ring_shrinks_where_drivers_are_dense():
    assert first_radius(0, 100.0) is None and first_radius(10, 0.0) is None
    assert first_radius(20, 100.0) is None  # sparse: the usual first ring
    dense = first_radius(20_000, 100.0)
    assert dense is not None and MIN_FIRST_RADIUS_M <= dense < RADIUS_STEPS_M[0]
    assert first_radius(200_000, 100.0) == MIN_FIRST_RADIUS_M
    assert radius_steps(5000, dense) == [dense, 500, 1000, 2000, 3500, 5000]


def test_a_trip_waits_while_requested_without_an_open_offer():
    assert is_waiting({"status": "requested", "offer": None})
    assert not is_waiting({"status": "requested", "offer": {"driver_id": "d"}})
    assert not is_waiting({"status": "assigned", "offer": None})
    assert not is_waiting(None)


def test_dispatch_runs_when_a_trip_waits_or_a_driver_is_free():
    assert "trip.requested" in TRIP_WAITS and "trip.offered" not in TRIP_WAITS
    # The fix that makes a driver available is an event: dispatch is never
    # on the location request's path.
    assert {"driver.available", "driver.online", "trip.completed"} <= DRIVER_FREED


def test_radius_widens_up_to_the_dispatch_radius():
    assert radius_steps(5000) == [500, 1000, 2000, 3500, 5000]
    assert radius_steps(800) == [500, 800]
    assert radius_steps(300) == [300]


def test_rank_order_is_oldest_first():
    assert rank_order({"t3": 30, "t1": 10, "t2": 20, "t0": 10}) == ["t0", "t1", "t2", "t3"]


def test_geo_helpers():
    assert geohash(57.64911, 10.40744, 11) == "u4pruydqqvj"
    assert surge_cell(37.7749, -122.4194) == "9q8yy"
    assert 13_000 < haversine_m(37.7749, -122.4194, 37.8044, -122.2712) < 14_000
    assert haversine_m(1, 1, 1, 1) == 0


def test_cursor_round_trip():
    assert decode_cursor(encode_cursor(1700000000123, "trp_sf_X")) == (1700000000123, "trp_sf_X")
