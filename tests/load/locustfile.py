"""Load test: riders and drivers doing the same journeys as the simulated city.

    locust -f tests/load/locustfile.py --host http://127.0.0.1:8080          # web UI on :8089
    locust -f tests/load/locustfile.py --host URL --headless -u 50 -r 5 -t 2m
    make load                                             # see docs/load-testing.md

RiderUser (weight 3): signs up, logs in, then repeats the rider journey:
nearby cars, estimates, a trip request with an Idempotency-Key, the trip
screen polled until the end, sometimes a cancellation, a rating.

DriverUser (weight 2): signs up, logs in, goes online somewhere in the demo
region, long-polls offers, accepts most (declines some), drives to the pickup
reporting its location, arrives, starts, drives, completes.

Races that are part of normal operation are not failures: an offer that
expired or went to someone else (409 on accept), a trip the rider cancelled
while the driver was on the way (409 on arrive/start), a cancellation that
came too late (409), an active trip already open (409 on request).

Custom metric: "TRIP request-to-assigned", the time from the rider's request
(201) until the rider first sees the trip assigned, fired through
`events.request` so it appears in the statistics and reports with its
percentiles like any endpoint.

Settings (environment): LOAD_OFFER_WAIT_S (long-poll wait, 5),
LOAD_MAX_TRIP_WAIT_S (a rider cancels after waiting this long, 60),
LOAD_CANCEL_SHARE (the share of trips a rider cancels soon after the request,
whatever their state by then, 0.08), LOAD_REGION (sf).
"""

from __future__ import annotations

import os
import random
import sys
import time
import uuid
from pathlib import Path

from locust import HttpUser, between, events, task
from locust.exception import StopUser

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from deploy.sim.geometry import point_json  # noqa: E402
from deploy.sim.streets import StreetGraph  # noqa: E402  (after the path fix)

OFFER_WAIT_S = int(os.environ.get("LOAD_OFFER_WAIT_S", "5"))
MAX_TRIP_WAIT_S = float(os.environ.get("LOAD_MAX_TRIP_WAIT_S", "60"))
CANCEL_SHARE = float(os.environ.get("LOAD_CANCEL_SHARE", "0.08"))
# A rider who changes plans does so this soon after the request (seconds).
CHANGE_OF_PLANS_S = (0.5, 3.0)
CANCELLABLE = {"requested", "assigned", "arrived"}
REGION = os.environ.get("LOAD_REGION", "sf")
RUN = uuid.uuid4().hex[:6]
PRODUCTS = ("standard", "xl", "premium")
TERMINAL = {"completed", "cancelled", "expired"}
GRAPH = StreetGraph.load(REGION)


def fire_metric(environment, name: str, started: float, exception: Exception | None = None) -> None:
    environment.events.request.fire(
        request_type="TRIP",
        name=name,
        response_time=(time.monotonic() - started) * 1000.0,
        response_length=0,
        exception=exception,
        context={},
    )


class ApiUser(HttpUser):
    abstract = True
    kind = "user"
    token: str | None = None

    def on_start(self) -> None:
        self.rng = random.Random()
        self.user_name = f"load.{self.kind[0]}.{RUN}.{uuid.uuid4().hex[:10]}"
        self.password = uuid.uuid4().hex
        with self.client.post(
            f"/v1/{self.kind}s", json=self.profile(), name=f"/v1/{self.kind}s",
            catch_response=True,
        ) as resp:
            if resp.status_code == 201:
                resp.success()
            else:
                resp.failure(f"sign-up: {resp.status_code} {resp.text[:200]}")
                raise StopUser()
        self.log_in()

    def log_in(self) -> None:
        with self.client.post(
            "/v1/sessions", json={"user_name": self.user_name, "password": self.password},
            name="/v1/sessions", catch_response=True,
        ) as resp:
            if resp.status_code != 201:
                resp.failure(f"log-in: {resp.status_code} {resp.text[:200]}")
                raise StopUser()
            self.token = resp.json()["token"]
            self.client.headers["Authorization"] = f"Bearer {self.token}"

    def profile(self) -> dict:
        raise NotImplementedError

    def call(self, method: str, path: str, name: str, ok: tuple[int, ...], **kwargs):
        """A request whose statuses in `ok` count as success; returns the response."""
        with self.client.request(method, path, name=name, catch_response=True, **kwargs) as resp:
            if resp.status_code in ok:
                resp.success()
            else:
                resp.failure(f"{resp.status_code} {resp.text[:200]}")
            return resp

    def point(self):
        return GRAPH.nodes[GRAPH.random_node(self.rng)]


class RiderUser(ApiUser):
    weight = 3
    kind = "rider"
    wait_time = between(2, 6)

    def profile(self) -> dict:
        return {
            "user_name": self.user_name,
            "password": self.password,
            "first_name": "Load",
            "last_name": "Rider",
            "email": f"{self.user_name}@example.com",
            "age": self.rng.randint(18, 80),
            "region": REGION,
        }

    @task(1)
    def history(self) -> None:
        self.call("GET", "/v1/trips?limit=10", "/v1/trips", (200,))

    @task(8)
    def ride(self) -> None:
        origin = GRAPH.random_node(self.rng)
        target = GRAPH.destination(self.rng, origin, 800, 5000)
        places = {
            "pickup": point_json(GRAPH.nodes[origin]),
            "dropoff": point_json(GRAPH.nodes[target]),
        }
        p = places["pickup"]
        self.call(
            "GET", f"/v1/drivers/nearby?lat={p['lat']}&lon={p['lon']}&radius_m=3000",
            "/v1/drivers/nearby", (200,),
        )
        est = self.call("POST", "/v1/estimates", "/v1/estimates", (200,), json=places)
        product = "standard"
        if est.status_code == 200:
            served = [e["product"] for e in est.json().get("estimates", [])
                      if e.get("pickup_eta_s") is not None]
            if served:
                product = self.rng.choice(served)
        resp = self.call(
            "POST", "/v1/trips", "/v1/trips [request]", (201, 409),
            json={**places, "product": product},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        if resp.status_code == 409:
            trip = self.active_trip()  # one left open by an earlier iteration
            if trip is None:
                return
        elif resp.status_code == 201:
            trip = resp.json()
        else:
            return
        self.follow(trip)

    def active_trip(self) -> dict | None:
        resp = self.call("GET", "/v1/trips?limit=1", "/v1/trips", (200,))
        if resp.status_code != 200:
            return None
        items = resp.json().get("items") or []
        return items[0] if items and items[0].get("status") not in TERMINAL else None

    def follow(self, trip: dict) -> None:
        """The trip screen: poll until the trip ends; cancel when waiting too long."""
        trip_id = trip["id"]
        requested = time.monotonic()
        status = trip.get("status")
        assigned_seen = status != "requested"
        changes_plans = self.rng.random() < CANCEL_SHARE
        cancel_at = requested + (
            self.rng.uniform(*CHANGE_OF_PLANS_S) if changes_plans else MAX_TRIP_WAIT_S
        )
        while status not in TERMINAL:
            # The screen refreshes every second; a rider changing plans acts on time.
            time.sleep(max(0.0, min(1.0, cancel_at - time.monotonic())))
            resp = self.call("GET", f"/v1/trips/{trip_id}", "/v1/trips/{id}", (200,))
            if resp.status_code != 200:
                continue
            status = resp.json().get("status")
            if status != "requested" and not assigned_seen:
                assigned_seen = True
                if status != "cancelled" and status != "expired":
                    fire_metric(self.environment, "request-to-assigned", requested)
            # A change of plans cancels while the API allows it; a long wait
            # cancels a trip still waiting for (or waiting on) its driver.
            allowed = CANCELLABLE if changes_plans else {"requested", "assigned"}
            if status in allowed and time.monotonic() >= cancel_at:
                # 409: the trip moved on (a driver started it) in the meantime.
                cancel = self.call(
                    "POST", f"/v1/trips/{trip_id}/cancel", "/v1/trips/{id}/cancel", (200, 409),
                    json={"reason": "load test: changed plans"},
                )
                if cancel.status_code == 200:
                    status = "cancelled"
                else:
                    cancel_at = float("inf")
        if status == "completed":
            self.call(
                "POST", f"/v1/trips/{trip_id}/rating", "/v1/trips/{id}/rating", (200,),
                json={"stars": self.rng.choice((5, 5, 5, 4, 4, 3)), "comment": "load test"},
            )


class DriverUser(ApiUser):
    weight = 2
    kind = "driver"
    wait_time = between(0.2, 1.0)

    def profile(self) -> dict:
        self.product = self.rng.choices(PRODUCTS, (6, 3, 2))[0]
        return {
            "user_name": self.user_name,
            "password": self.password,
            "first_name": "Load",
            "last_name": "Driver",
            "email": f"{self.user_name}@example.com",
            "car": {"make": "Toyota", "model": "Prius", "color": "white",
                    "plate": f"7LD{self.rng.randint(0, 9999):04d}", "seats": 4},
            "product": self.product,
            "region": REGION,
        }

    def on_start(self) -> None:
        super().on_start()
        self.position = self.point()
        self.put_location()
        self.call("POST", "/v1/driver/status", "/v1/driver/status", (200,),
                  json={"status": "online"})

    def on_stop(self) -> None:
        if self.token:
            self.call("POST", "/v1/driver/status", "/v1/driver/status", (200, 409),
                      json={"status": "offline"})

    def put_location(self) -> None:
        self.call("PUT", "/v1/driver/location", "/v1/driver/location", (204, 200),
                  json={**point_json(self.position), "speed_mps": 11.0})

    def drive_to(self, target) -> None:
        """A few location updates along the street route (the load test drives fast)."""
        path = GRAPH.route_between(self.position, target)
        steps = min(4, len(path) - 1)
        for k in range(1, steps + 1):
            time.sleep(0.5)
            self.position = path[round(k * (len(path) - 1) / steps)]
            self.put_location()
        self.position = target

    @task
    def work(self) -> None:
        resp = self.call(
            "GET", f"/v1/driver/offers/next?wait={OFFER_WAIT_S}",
            f"/v1/driver/offers/next [long-poll {OFFER_WAIT_S}s]", (200, 204),
        )
        if resp.status_code == 204:
            if self.rng.random() < 0.5:
                self.put_location()
            return
        if resp.status_code != 200:
            return
        offer = resp.json()
        trip_id = offer["trip_id"]
        if self.rng.random() < 0.1:
            self.call("POST", f"/v1/driver/offers/{trip_id}/decline",
                      "/v1/driver/offers/{id}/decline", (204, 404, 409))
            return
        accept = self.call("POST", f"/v1/driver/offers/{trip_id}/accept",
                           "/v1/driver/offers/{id}/accept", (200, 404, 409))
        if accept.status_code != 200:
            return  # the offer expired or the trip was cancelled meanwhile
        trip = accept.json()
        pickup = (trip["pickup"]["lat"], trip["pickup"]["lon"])
        dropoff = (trip["dropoff"]["lat"], trip["dropoff"]["lon"])
        self.drive_to(pickup)
        # 409 from here on: the rider cancelled while the driver was on the way.
        if self.call("POST", f"/v1/trips/{trip_id}/arrive", "/v1/trips/{id}/arrive",
                     (200, 409)).status_code != 200:
            return
        time.sleep(self.rng.uniform(0.5, 1.5))
        if self.call("POST", f"/v1/trips/{trip_id}/start", "/v1/trips/{id}/start",
                     (200, 409)).status_code != 200:
            return
        self.drive_to(dropoff)
        self.call("POST", f"/v1/trips/{trip_id}/complete", "/v1/trips/{id}/complete", (200,))


@events.quitting.add_listener
def _exit_code(environment, **_kw) -> None:
    """Exit non-zero when any request failed, so scripts and CI can rely on it."""
    if environment.stats.total.num_failures > 0:
        environment.process_exit_code = 1
