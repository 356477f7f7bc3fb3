"""End to end: trip_service, driver_service and the gateway as real processes
on their own real Redis, called over HTTP as a client would.

One System for the whole run, shared by every module that does not harm it
(a module that kills processes starts its own). Tests keep
out of each other's way by place, not by cleanup: each takes its own spot of
the city, farther from every other spot than DISPATCH_RADIUS_M, so a trip of
one test is never offered to a driver of another.

The suite runs twice (the `redis_mode` parameter): on one embedded server
with one process of each service, and on a Redis Cluster of three masters
serving three regions, with two replicas of the gateway and of each service,
each pair behind a round-robin balancer (the path past one machine). `E2E_REDIS=standalone` or `E2E_REDIS=cluster` runs one of
them. Every process connects as its own ACL user (common.acl); a system that
stops with a permission denial in the server's ACL LOG fails the run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.client import OPS_PASSWORD, OPS_USER, ApiClient, driver_body, rider_body
from tests.helpers.e2e import MODES, E2ESystem, start_system, stop_system, unique


def modes() -> list[str]:
    wanted = os.environ.get("E2E_REDIS", "both")
    if wanted == "both":
        return list(MODES)
    if wanted not in MODES:
        raise ValueError(f"E2E_REDIS must be one of {MODES} or 'both', not {wanted!r}")
    return [wanted]


@pytest.fixture(scope="session", params=modes())
def redis_mode(request) -> str:
    return request.param


def pytest_collection_modifyitems(config, items):
    """A test marked `cluster_only` exists only in the cluster pass: on one
    server there is nothing to scale out, so it is not collected there (rather
    than skipped)."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        standalone = callspec is not None and callspec.params.get("redis_mode") == "standalone"
        (drop if standalone and item.get_closest_marker("cluster_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def system(tmp_path_factory, redis_mode) -> E2ESystem:
    s = start_system(tmp_path_factory, redis_mode)
    yield s
    stop_system(s)


@pytest.fixture
async def http(system) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def new_client(http, system):
    def make() -> ApiClient:
        return ApiClient(http, system.url)

    return make


@pytest.fixture
def rider(new_client):
    async def make(**over) -> ApiClient:
        c = new_client()
        name = unique("r")
        r = await c.post("/v1/riders", rider_body(name, **over))
        assert r.status == 201, r
        c.profile = r.body
        await c.login(name)
        return c

    return make


@pytest.fixture
def driver(new_client):
    async def make(at: dict | None = None, product: str = "standard", **over) -> ApiClient:
        c = new_client()
        name = unique("d")
        r = await c.post("/v1/drivers", driver_body(name, product, **over))
        assert r.status == 201, r
        c.profile = r.body
        await c.login(name)
        if at is not None:
            r = await c.call("PUT", "/v1/driver/location", at)
            assert r.status == 204, r
            r = await c.post("/v1/driver/status", {"status": "online"})
            assert r.status == 200, r
        return c

    return make


@pytest.fixture
async def ops(new_client) -> ApiClient:
    c = new_client()
    await c.login(OPS_USER, OPS_PASSWORD)
    return c
