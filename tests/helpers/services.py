"""Both services driven as riders and drivers would, through the internal API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from common import ids, keys
from tests.waiting import eventually

# Downtown San Francisco, inside the default region.
CENTER = (37.7749, -122.4194)
DROPOFF = {"lat": 37.7955, "lon": -122.3937}


def near(d_lat: float = 0.0, d_lon: float = 0.0) -> dict:
    return {"lat": round(CENTER[0] + d_lat, 6), "lon": round(CENTER[1] + d_lon, 6)}


@dataclass
class Rig:
    trips: Any
    drivers: Any
    redis: Any
    # driver_service's: a test starts a second one from it.
    settings: Any
    driver_app: Any

    # --- drivers -------------------------------------------------------
    async def new_driver(self, at: dict | None = None, product: str = "standard",
                         online: bool = True) -> str:
        driver_id = ids.new_id(ids.DRIVER, "sf")
        r = await self.drivers.post("/internal/drivers", json={
            "driver_id": driver_id, "first_name": "Dee", "last_name": "Driver",
            "car": {"make": "Toyota", "model": "Prius", "color": "blue", "plate": "7ABC123",
                    "seats": 4},
            "product": product,
        })
        assert r.status == 201, await r.text()
        if at is not None:
            await self.locate(driver_id, at)
        if online:
            await self.status(driver_id, "online")
        return driver_id

    async def locate(self, driver_id: str, at: dict) -> None:
        r = await self.drivers.put(f"/internal/drivers/{driver_id}/location", json=at)
        assert r.status == 204, await r.text()

    async def status(self, driver_id: str, status: str, expect: int = 200) -> dict:
        r = await self.drivers.post(f"/internal/drivers/{driver_id}/status", json={"status": status})
        assert r.status == expect, await r.text()
        return await r.json()

    async def driver(self, driver_id: str) -> dict:
        r = await self.drivers.get(f"/internal/drivers/{driver_id}")
        assert r.status == 200, await r.text()
        return await r.json()

    async def next_offer(self, driver_id: str, wait: float = 5) -> dict | None:
        r = await self.drivers.get(f"/internal/drivers/{driver_id}/offers/next",
                                   params={"wait": str(wait)})
        assert r.status in (200, 204), await r.text()
        return await r.json() if r.status == 200 else None

    async def accept(self, driver_id: str, trip_id: str):
        return await self.drivers.post(f"/internal/drivers/{driver_id}/offers/{trip_id}/accept")

    async def decline(self, driver_id: str, trip_id: str):
        return await self.drivers.post(f"/internal/drivers/{driver_id}/offers/{trip_id}/decline")

    async def act(self, driver_id: str, trip_id: str, action: str, body: dict | None = None):
        return await self.drivers.post(
            f"/internal/drivers/{driver_id}/trips/{trip_id}/{action}", json=body or {}
        )

    # --- riders ----------------------------------------------------------
    async def request(self, pickup: dict | None = None, product: str = "standard",
                      rider_id: str | None = None) -> dict:
        rider_id = rider_id or ids.new_id(ids.RIDER, "sf")
        r = await self.trips.post("/internal/trips", json={
            "rider_id": rider_id, "pickup": pickup or near(), "dropoff": DROPOFF,
            "product": product,
        })
        assert r.status == 201, await r.text()
        return await r.json()

    async def trip(self, trip_id: str) -> dict:
        r = await self.trips.get(f"/internal/trips/{trip_id}")
        assert r.status == 200, await r.text()
        return await r.json()

    async def cancel(self, trip_id: str, rider_id: str):
        return await self.trips.post(f"/internal/trips/{trip_id}/cancel",
                                     json={"rider_id": rider_id})

    # --- raw state -------------------------------------------------------
    async def doc(self, trip_id: str) -> dict:
        return orjson.loads(await self.redis.execute_command("JSON.GET", keys.trip(trip_id)))

    async def driver_doc(self, driver_id: str) -> dict:
        return orjson.loads(await self.redis.execute_command("JSON.GET", keys.driver(driver_id)))

    async def events(self, region: str = "sf") -> list[dict]:
        rows = await self.redis.xrange(keys.events(region))
        return [{**orjson.loads(f["env"]), "stream_id": sid} for sid, f in rows]

    async def types_of(self, trip_id: str) -> list[str]:
        return [e["type"] for e in await self.events() if e.get("trip_id") == trip_id]

    async def settled(self) -> None:
        """Wait until every consumer group has handled every entry."""

        async def quiet():
            try:
                groups = await self.redis.xinfo_groups(keys.events("sf"))
            except Exception:
                return True
            return all(g["pending"] == 0 and not g.get("lag") for g in groups)

        await eventually(quiet, timeout=5, message="timed out waiting for consumer groups to catch up")

    async def offered(self, driver_id: str, timeout: float = 5.0) -> dict:
        offer = await self.next_offer(driver_id, wait=timeout)
        assert offer is not None, f"no offer for {driver_id}"
        return offer

    async def assigned_trip(self, at: dict | None = None) -> tuple[str, str, str]:
        """A trip assigned to a fresh driver: (trip_id, rider_id, driver_id)."""
        driver_id = await self.new_driver(at or near())
        trip = await self.request(at or near())
        offer = await self.offered(driver_id)
        assert offer["trip_id"] == trip["id"]
        r = await self.accept(driver_id, trip["id"])
        assert r.status == 200, await r.text()
        return trip["id"], trip["rider_id"], driver_id
