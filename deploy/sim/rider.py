"""A rider's trips: nearby cars, estimates, a request, following it, cancelling, rating."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from typing import TYPE_CHECKING, Any

from common.retry import backoff_s
from deploy.sim.geometry import point_json
from deploy.sim.person import Person, pick_product

if TYPE_CHECKING:
    from deploy.sim.city import City

logger = logging.getLogger(__name__)

# Which products riders ask for (a simulation choice); others get an even share.
RIDER_PRODUCTS = {"standard": 0.65, "xl": 0.2, "premium": 0.15}
COMMENTS = ("Great ride", "Friendly driver", "Clean car", "Smooth driving", "On time",
            "Thanks!", "Took a long way round", "")


class Rider(Person):
    kind = "rider"

    def __init__(self, city: City, number: int) -> None:
        super().__init__(city, number)
        self.vocabulary = city.vocabulary
        self.trip: dict | None = None

    def profile(self) -> dict:
        body = {
            "user_name": self.user_name,
            "password": self.password,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": f"{self.user_name}@example.com",
            "age": self.rng.randint(18, 80),
            "region": self.cfg.region,
        }
        if self.rng.random() < 0.3:
            body["bio"] = self.rng.choice(("Commuter", "Night owl", "Visiting SF", "Student"))
        return body

    async def leave(self) -> None:
        """At shutdown: cancel a trip that has not started (best effort)."""
        trip = self.trip
        if self.token and trip and self.state in self.vocabulary.sources("rider_cancel"):
            await self.api.call(
                "POST", f"/v1/trips/{trip['id']}/cancel", token=self.token,
                json_body={"reason": "left the app"}, attempts=1, timeout_s=2,
            )

    async def live(self) -> None:
        # After a restart with the same CITY_RUN_ID, follow the trip in progress.
        reply = await self.call("GET", "/v1/trips", params={"limit": "1"})
        if reply.status == 200 and isinstance(reply.body, dict):
            items = reply.body.get("items") or []
            if items and items[0].get("status") in self.vocabulary.active:
                await self.follow(items[0])
        # First requests spread over the first minutes, then riders pace themselves.
        await self.sleep(self.rng.uniform(2, self.cfg.sim(300)))
        while True:
            self.state = "idle"
            await self.take_a_ride()
            await self.sleep(self.cfg.sim(self.rng.uniform(60, 300)))

    async def take_a_ride(self) -> None:
        origin = self.graph.random_node(self.rng)
        target = self.graph.destination(self.rng, origin, 500, 3000)
        pickup, dropoff = self.graph.nodes[origin], self.graph.nodes[target]
        self.state = "looking"
        await self.call(
            "GET", "/v1/drivers/nearby",
            params={"lat": str(pickup[0]), "lon": str(pickup[1]), "radius_m": "3000"},
        )
        places = {"pickup": point_json(pickup), "dropoff": point_json(dropoff)}
        estimates = await self.call("POST", "/v1/estimates", json_body=places)
        product = pick_product(self.rng, self.vocabulary.products, RIDER_PRODUCTS)
        if estimates.status == 200 and isinstance(estimates.body, dict):
            etas = {
                e.get("product"): e.get("pickup_eta_s")
                for e in estimates.body.get("estimates", [])
                if isinstance(e, dict)
            }
            if etas.get(product) is None:
                served = [p for p, eta in etas.items() if eta is not None]
                if served and self.rng.random() < 0.7:
                    product = self.rng.choice(served)
        await self.sleep(self.rng.uniform(1, 4))  # reading the prices
        key = str(uuid.uuid4())
        # The same Idempotency-Key on every retry: a lost answer never makes two trips.
        reply = await self.call(
            "POST", "/v1/trips", json_body={**places, "product": product},
            headers={"Idempotency-Key": key},
        )
        if reply.status == 201 and isinstance(reply.body, dict):
            self.stats.add("trips_requested")
            if reply.headers.get("Idempotent-Replayed"):
                self.stats.add("idempotent_replays")
            await self.follow(reply.body)
        elif reply.status == 409:
            # An active trip already exists (ours, from a retry or an earlier run).
            mine = await self.call("GET", "/v1/trips", params={"limit": "1"})
            if mine.status == 200 and isinstance(mine.body, dict):
                items = mine.body.get("items") or []
                if items and items[0].get("status") in self.vocabulary.active:
                    await self.follow(items[0])
        else:
            logger.info("%s: request trip: %s", self.user_name, reply.describe())

    async def follow(self, trip: dict) -> None:
        """Watch the trip over SSE; cancel when patience runs out; rate at the end."""
        self.trip = trip
        trip_id = trip["id"]
        initial = self.vocabulary.initial
        status = trip.get("status", initial)
        requested_mono = time.monotonic()
        state = {"status": status, "assigned_seen": status != initial}
        done = asyncio.Event()
        self.state = status

        def on_status(new: str) -> None:
            state["status"] = new
            self.state = new
            if new in self.vocabulary.with_driver and not state["assigned_seen"]:
                state["assigned_seen"] = True
                self.stats.assigned_after(time.monotonic() - requested_mono)
            if new in self.vocabulary.terminal:
                done.set()

        tasks = [
            asyncio.create_task(self.watch(trip_id, on_status, done)),
            asyncio.create_task(self.impatience(trip_id, state, done)),
            asyncio.create_task(self.check_queue(trip_id, state, on_status, done)),
        ]
        try:
            await done.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.trip = None
        final = state["status"]
        self.stats.add(f"trips_{final}")
        if final == "completed" and self.rng.random() < 0.85:
            await self.sleep(self.rng.uniform(1, 5))
            stars = self.rng.choices((5, 4, 3, 2, 1), (60, 25, 9, 4, 2))[0]
            body: dict[str, Any] = {"stars": stars}
            comment = self.rng.choice(COMMENTS)
            if comment:
                body["comment"] = comment
            reply = await self.call("POST", f"/v1/trips/{trip_id}/rating", json_body=body)
            if reply.status == 200:
                self.stats.add("ratings")
        elif final == "expired":
            logger.info("%s: no driver took %s before it expired", self.user_name, trip_id)

    async def watch(self, trip_id: str, on_status, done: asyncio.Event) -> None:
        """The trip's event stream, reconnecting with Last-Event-ID."""
        last_id: str | None = None
        failures = 0
        while not done.is_set():
            try:
                async for event_id, event_type, _data in self.api.events(
                    f"/v1/trips/{trip_id}/events", self.token or "", last_id, 150.0
                ):
                    failures = 0
                    last_id = event_id or last_id
                    self.stats.add("sse_events")
                    if event_type in self.vocabulary.event_status:
                        on_status(self.vocabulary.event_status[event_type])
                    if done.is_set():
                        return
            except ConnectionError as exc:
                code = exc.args[0] if exc.args else 0
                if code == 401:
                    await self.log_in()
                elif code == 404:
                    return  # not ours any more: the queue check settles the status
            except (TimeoutError, OSError) as exc:
                logger.debug("%s: event stream dropped: %r", self.user_name, exc)
            except Exception as exc:  # aiohttp.ClientError and friends
                logger.debug("%s: event stream error: %r", self.user_name, exc)
            if done.is_set():
                return
            failures += 1
            self.stats.add("sse_reconnects")
            await asyncio.sleep(backoff_s(min(failures, 5)))

    async def check_queue(self, trip_id: str, state: dict, on_status, done: asyncio.Event) -> None:
        """The app's trip screen: queue position, then the driver's car and ETA.

        Also the safety net if the event stream is down: the status comes
        from the trip itself.
        """
        while not done.is_set():
            await self.sleep(self.rng.uniform(6, 12))
            reply = await self.call("GET", f"/v1/trips/{trip_id}")
            if reply.status == 200 and isinstance(reply.body, dict):
                status = reply.body.get("status")
                terminal, initial = self.vocabulary.terminal, self.vocabulary.initial
                if status and status != state["status"] and (
                    status in terminal or state["status"] == initial
                ):
                    on_status(status)
            elif reply.status == 404:
                on_status(self.vocabulary.target("rider_cancel"))  # gone: as if cancelled

    async def impatience(self, trip_id: str, state: dict, done: asyncio.Event) -> None:
        """Some riders give up waiting; a few change their mind after a driver is found."""
        patience = self.cfg.sim(self.rng.uniform(90, 600))
        changes_mind = self.rng.random() < 0.04
        waited = 0.0
        initial = self.vocabulary.initial
        cancellable = self.vocabulary.sources("rider_cancel")
        while not done.is_set():
            await asyncio.sleep(1.0)
            waited += 1.0
            status = state["status"]
            give_up = status == initial and waited >= patience and self.rng.random() < 0.5
            if status == initial and waited >= patience and not give_up:
                patience = math.inf  # decided to wait it out
            mind = changes_mind and status != initial and status in cancellable \
                and self.rng.random() < 0.2
            if give_up or mind:
                reason = "waited too long" if give_up else "plans changed"
                reply = await self.call(
                    "POST", f"/v1/trips/{trip_id}/cancel", json_body={"reason": reason}
                )
                if reply.status == 200:
                    state["status"] = self.vocabulary.target("rider_cancel")
                    done.set()
                    return
                changes_mind = False
                patience = math.inf
