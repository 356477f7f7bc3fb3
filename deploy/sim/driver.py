"""A driver's shift: online, location fixes, offers, trips, breaks, signing off."""

from __future__ import annotations

import asyncio
import logging
import random
import string
import time
from datetime import datetime
from typing import TYPE_CHECKING

from common.retry import backoff_s
from deploy.sim.client import Reply
from deploy.sim.geometry import Point, json_point, point_json
from deploy.sim.person import Person, SignedOut, pick_product
from deploy.sim.vehicle import Vehicle

if TYPE_CHECKING:
    from deploy.sim.city import City

logger = logging.getLogger(__name__)

# The city's fleet per product (a simulation choice, not the system's
# vocabulary): a product the system offers and the city does not know gets a
# generic car with the seats the product says.
CARS = {
    "standard": [("Toyota", "Prius", 4), ("Toyota", "Camry", 4), ("Honda", "Accord", 4),
                 ("Tesla", "Model 3", 4), ("Chevrolet", "Bolt", 4), ("Hyundai", "Ioniq 5", 4)],
    "xl": [("Toyota", "Sienna", 6), ("Honda", "Odyssey", 7), ("Chevrolet", "Suburban", 7),
           ("Kia", "Carnival", 7), ("Tesla", "Model Y", 6)],
    "premium": [("Mercedes-Benz", "E-Class", 4), ("BMW", "5 Series", 4), ("Lexus", "ES", 4),
                ("Tesla", "Model S", 4), ("Audi", "A6", 4)],
}
GENERIC_CARS = [("Toyota", "Corolla"), ("Ford", "Fusion"), ("Nissan", "Leaf"), ("Kia", "Niro")]
COLORS = ("black", "white", "silver", "grey", "blue", "red", "green")
# How the fleet divides among the products; others get an even share.
DRIVER_PRODUCTS = {"standard": 0.6, "xl": 0.25, "premium": 0.15}


def car_for(rng: random.Random, product: str, seats: int | None) -> tuple[str, str, int]:
    """A make, model and seat count for a driver of `product`."""
    if product in CARS:
        return rng.choice(CARS[product])
    make, model = rng.choice(GENERIC_CARS)
    return make, model, seats or 4


class Driver(Person):
    kind = "driver"

    def __init__(self, city: City, number: int) -> None:
        super().__init__(city, number)
        vocabulary = city.vocabulary
        self.product = pick_product(self.rng, vocabulary.products, DRIVER_PRODUCTS)
        make, model, seats = car_for(self.rng, self.product,
                                     vocabulary.product_seats.get(self.product))
        self.car = {
            "make": make,
            "model": model,
            "color": self.rng.choice(COLORS),
            "plate": f"{self.rng.randint(5, 9)}"
            f"{''.join(self.rng.choices(string.ascii_uppercase, k=3))}"
            f"{self.rng.randint(0, 999):03d}",
            "seats": seats,
        }
        self.vehicle = Vehicle(self.graph.nodes[self.graph.random_node(self.rng)])
        self.online = False
        self.trip_id: str | None = None
        self.cruising = True
        self._reporter: asyncio.Task | None = None

    def profile(self) -> dict:
        return {
            "user_name": self.user_name,
            "password": self.password,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": f"{self.user_name}@example.com",
            "car": self.car,
            "product": self.product,
            "region": self.cfg.region,
        }

    # The phone's GPS: report the position every few seconds, whatever else happens.
    async def report_location(self) -> None:
        every = self.cfg.location_every_s
        last = time.monotonic()
        while True:
            await asyncio.sleep(every * self.rng.uniform(0.9, 1.1))
            now = time.monotonic()
            try:
                self.vehicle.advance(now - last)
                if not self.vehicle.moving and self.trip_id is None and self.cruising:
                    self.cruise()
                if self.token is not None:
                    await self.put_location()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("%s: location update failed", self.user_name)
            last = now

    async def put_location(self) -> None:
        body = {
            **point_json(self.vehicle.position),
            "heading": round(self.vehicle.heading, 1) % 360.0,
            # The car's own speed, as its phone would measure it: the city
            # moves it `pace` times faster than that.
            "speed_mps": round(self.vehicle.speed_mps / self.cfg.pace, 1),
        }
        reply = await self.call("PUT", "/v1/driver/location", json_body=body, attempts=2)
        if reply.status == 204 or reply.status == 200:
            self.stats.add("location_updates")
        elif reply.status == 422:
            # Off the region somehow: back onto the nearest street of the city.
            self.stats.add("location_refused")
            logger.warning("%s: location refused: %s", self.user_name, reply.describe())
            self.vehicle.position = self.graph.nodes[self.graph.nearest(self.vehicle.position)]

    def cruise(self) -> None:
        """Idle drivers drift around their area, now and then parking a while."""
        if self.rng.random() < 0.4:
            return
        here = self.graph.nearest(self.vehicle.position)
        there = self.graph.destination(self.rng, here, 400, 1500)
        self.vehicle.drive(self.graph.route(here, there), self.cfg.speed_mps * 0.5)

    async def set_status(self, status: str) -> Reply:
        reply = await self.call("POST", "/v1/driver/status", json_body={"status": status})
        if reply.ok:
            self.online = status == "online"
            self.stats.add(f"went_{status}")
        return reply

    async def live(self) -> None:
        if self._reporter is None or self._reporter.done():
            self._reporter = asyncio.create_task(self.report_location())
        try:
            await self.put_location()
            # After a restart with the same CITY_RUN_ID, finish what was started.
            current = await self.call("GET", "/v1/driver/trip")
            if current.status == 200 and isinstance(current.body, dict):
                await self.do_trip(current.body)
            reply = await self.set_status("online")
            if not reply.ok:
                raise SignedOut(f"going online: {reply.describe()}")
            while True:
                self.state = "available"
                self.cruising = True
                reply = await self.call(
                    "GET", "/v1/driver/offers/next", params={"wait": "10"}, timeout_s=25
                )
                if reply.status == 204:
                    continue
                if reply.status != 200 or not isinstance(reply.body, dict):
                    logger.info("%s: offers/next %s", self.user_name, reply.describe())
                    await self.sleep(backoff_s(2))
                    continue
                self.stats.add("offers")
                await self.consider(reply.body)
                if self.rng.random() < 0.05:
                    await self.take_a_break()
        finally:
            self._reporter.cancel()
            await asyncio.gather(self._reporter, return_exceptions=True)
            self._reporter = None

    async def consider(self, offer: dict) -> None:
        trip_id = offer["trip_id"]
        self.state = "considering an offer"
        await self.sleep(self.rng.uniform(0.5, 3.0))
        roll = self.rng.random()
        if roll < 0.03:
            # The phone was in a pocket: the offer times out and goes to someone else.
            self.stats.add("offers_ignored")
            await self.sleep(self.seconds_until(offer.get("expires_at")) + 0.5)
            return
        if roll < 0.15:
            reply = await self.call("POST", f"/v1/driver/offers/{trip_id}/decline")
            self.stats.add("offers_declined" if reply.status == 204 else "offers_lost")
            return
        reply = await self.call("POST", f"/v1/driver/offers/{trip_id}/accept")
        if reply.status == 200 and isinstance(reply.body, dict):
            self.stats.add("offers_accepted")
            await self.do_trip(reply.body)
        elif reply.status in (404, 409):
            self.stats.add("offers_lost")  # expired, cancelled, or taken meanwhile
        else:
            logger.info("%s: accept %s: %s", self.user_name, trip_id, reply.describe())

    @staticmethod
    def seconds_until(iso: str | None) -> float:
        if not iso:
            return 15.0
        try:
            due = datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return 15.0
        return max(0.0, min(60.0, due - time.time()))

    async def still_mine(self, trip_id: str) -> bool:
        reply = await self.call("GET", "/v1/driver/trip")
        if reply.status == 200 and isinstance(reply.body, dict):
            return reply.body.get("id") == trip_id
        return reply.status != 204  # unsure (an error): keep going

    async def drive_to(self, target: Point, trip_id: str, *, may_be_cancelled: bool) -> bool:
        """Drive there; False if the rider cancelled on the way."""
        self.vehicle.drive(
            self.graph.route_between(self.vehicle.position, target), self.cfg.speed_mps
        )
        while not self.vehicle.arrived.is_set():
            try:
                await asyncio.wait_for(self.vehicle.arrived.wait(), 6.0)
            except TimeoutError:
                if may_be_cancelled and not await self.still_mine(trip_id):
                    self.vehicle.stop()
                    return False
        return True

    async def transition(self, trip_id: str, action: str) -> bool:
        reply = await self.call("POST", f"/v1/trips/{trip_id}/{action}")
        if reply.status == 200:
            return True
        if reply.status == 409 and not await self.still_mine(trip_id):
            self.stats.add("trips_lost_to_rider")  # the rider cancelled meanwhile
            return False
        if reply.status == 409:
            return True  # a retried call that had already gone through
        logger.info("%s: %s %s: %s", self.user_name, action, trip_id, reply.describe())
        return False

    async def do_trip(self, trip: dict) -> None:
        """Take the trip through the driver's steps the vocabulary names, from
        its current status to the end."""
        trip_id = trip["id"]
        self.trip_id = trip_id
        self.cruising = False
        vocabulary = self.city.vocabulary
        try:
            status = trip.get("status", "")
            pickup, dropoff = json_point(trip["pickup"]), json_point(trip["dropoff"])
            steps = 0
            while (action := vocabulary.driver_step(status)) is not None:
                if not await self.before(action, trip_id, pickup, dropoff):
                    return
                if not await self.transition(trip_id, action):
                    return
                status, steps = vocabulary.target(action), steps + 1
            if steps and status in vocabulary.terminal:
                self.stats.add("trips_driven")
        finally:
            task = asyncio.current_task()
            if task is None or not task.cancelling():
                self.trip_id = None  # kept on shutdown: leave() finishes the trip
                self.cruising = True

    async def before(self, action: str, trip_id: str, pickup: Point, dropoff: Point) -> bool:
        """What the driver does before each step; False when the trip is gone."""
        if action == "arrive":
            self.state = "to pickup"
            if self.rng.random() < 0.03:
                # Sometimes the car breaks down: the trip goes back to the queue.
                await self.sleep(self.rng.uniform(2, 6))
                reply = await self.call(
                    "POST", f"/v1/trips/{trip_id}/cancel",
                    json_body={"reason": "vehicle problem"},
                )
                if reply.status == 200:
                    self.stats.add("driver_cancellations")
                    self.vehicle.stop()
                    return False
            if not await self.drive_to(pickup, trip_id, may_be_cancelled=True):
                self.stats.add("trips_lost_to_rider")
                return False
        elif action == "start":
            self.state = "waiting for the rider"
            await self.sleep(self.cfg.sim(self.rng.uniform(20, 90)))
        elif action == "complete":
            self.state = "on a trip"
            await self.drive_to(dropoff, trip_id, may_be_cancelled=False)
        else:
            # A step the city has no special behaviour for: a moment's pause.
            self.state = action
            await self.sleep(self.cfg.sim(self.rng.uniform(10, 30)))
        return True

    async def take_a_break(self) -> None:
        if (await self.set_status("offline")).ok:
            self.state = "on a break"
            self.vehicle.stop()
            await self.sleep(self.cfg.sim(self.rng.uniform(120, 360)))
        await self.set_status("online")

    async def leave(self) -> None:
        """At shutdown, leave nothing hanging (best effort): a passenger on board
        is dropped off, a trip not yet started goes back to the queue, then offline."""
        if not self.token:
            return
        if self.trip_id:
            reply = await self.api.call(
                "GET", "/v1/driver/trip", token=self.token, attempts=1, timeout_s=2
            )
            if reply.status == 200 and isinstance(reply.body, dict):
                trip_id, status = reply.body.get("id"), reply.body.get("status")
                vocabulary = self.city.vocabulary
                if status in vocabulary.sources("complete"):
                    await self.api.call("POST", f"/v1/trips/{trip_id}/complete",
                                        token=self.token, attempts=1, timeout_s=2)
                elif status in vocabulary.sources("driver_cancel"):
                    await self.api.call("POST", f"/v1/trips/{trip_id}/cancel", token=self.token,
                                        json_body={"reason": "shift ended"}, attempts=1,
                                        timeout_s=2)
        if self.online:
            await self.api.call(
                "POST", "/v1/driver/status", token=self.token,
                json_body={"status": "offline"}, attempts=1, timeout_s=2,
            )
