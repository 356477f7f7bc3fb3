"""Both services as aiohttp apps on the real embedded Redis (the helpers that
act as riders and drivers are in tests/helpers/services.py)."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from driver_service.app import Workers
from driver_service.app import create_app as create_driver_app
from driver_service.settings import DriverSettings
from tests.helpers.services import Rig
from tests.helpers.settings import service_settings, split_overrides
from tests.internal import internal_headers
from trip_service.app import create_app as create_trip_app
from trip_service.settings import TripSettings


@pytest.fixture
def consumer_name() -> str:
    return f"test-{os.getpid()}-{os.urandom(3).hex()}"


@pytest.fixture
def trip_settings(redis_server, consumer_name) -> TripSettings:
    return service_settings(TripSettings, redis_server, consumer_name=consumer_name)


@pytest.fixture
def driver_settings(redis_server, consumer_name) -> DriverSettings:
    return service_settings(DriverSettings, redis_server, consumer_name=consumer_name)


@pytest.fixture
async def make_rig(redis, trip_settings, driver_settings, aiohttp_client):
    """Build the two apps with settings overrides (short timers, workers off);
    each service takes the overrides it has."""

    async def make(workers: Workers = Workers(), **overrides) -> Rig:
        for_trips, for_drivers = split_overrides(overrides, TripSettings, DriverSettings)
        trip_app = create_trip_app(replace(trip_settings, **for_trips))
        driver_s = replace(driver_settings, **for_drivers)
        driver_app = create_driver_app(driver_s, workers)
        trips = await aiohttp_client(trip_app, headers=internal_headers())
        drivers = await aiohttp_client(driver_app, headers=internal_headers())
        return Rig(trips, drivers, redis, driver_s, driver_app)

    return make


@pytest.fixture
async def rig(make_rig) -> Rig:
    return await make_rig()
