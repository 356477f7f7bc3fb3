"""A car: a position moving along a polyline at a given speed."""

from __future__ import annotations

import asyncio

from deploy.sim.geometry import Point, distance_m, heading_deg


class Vehicle:
    """A position moving along a polyline at a given speed."""

    def __init__(self, position: Point) -> None:
        self.position = position
        self.heading = 0.0
        self.speed_mps = 0.0
        self._path: list[Point] = []
        self.arrived = asyncio.Event()
        self.arrived.set()

    def drive(self, path: list[Point], speed_mps: float) -> None:
        self._path = list(path[1:]) if path and path[0] == self.position else list(path)
        self.speed_mps = speed_mps
        self.arrived.clear()
        if not self._path:
            self.arrived.set()

    def stop(self) -> None:
        self._path = []
        self.speed_mps = 0.0
        self.arrived.set()

    @property
    def moving(self) -> bool:
        return bool(self._path)

    def advance(self, seconds: float) -> None:
        budget = self.speed_mps * seconds
        while self._path and budget > 0:
            target = self._path[0]
            d = distance_m(self.position, target)
            if d > 0:
                self.heading = heading_deg(self.position, target)
            if d <= budget:
                self.position = target
                self._path.pop(0)
                budget -= d
            else:
                t = budget / d
                self.position = (
                    self.position[0] + (target[0] - self.position[0]) * t,
                    self.position[1] + (target[1] - self.position[1]) * t,
                )
                budget = 0
        if not self._path:
            self.speed_mps = 0.0
            self.arrived.set()
