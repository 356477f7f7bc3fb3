"""The city's settings: command-line options over environment variables."""

from __future__ import annotations

import argparse
import os
import string
import time
from dataclasses import dataclass

import deploy.sim

BASE_SPEED_MPS = 11.0  # about 40 km/h in town


@dataclass(frozen=True)
class CityConfig:
    gateway: str = "http://127.0.0.1:8080"
    drivers: int = 15
    riders: int = 20
    pace: float = 10.0
    duration_s: float = 0.0
    seed: int | None = None
    region: str = "sf"
    location_every_s: float = 2.0
    log_every_s: float = 15.0
    run_id: str = ""
    secret: str = "demo-city"
    start_timeout_s: float = 120.0

    def sim(self, seconds: float) -> float:
        """Real seconds for a span of simulated (real-life) seconds."""
        return seconds / self.pace

    @property
    def speed_mps(self) -> float:
        return BASE_SPEED_MPS * self.pace


def new_run_id() -> str:
    """Short, time-ordered, unique per run: restarts never collide."""
    alphabet = string.digits + string.ascii_lowercase
    n = int(time.time()) % 36**6
    out = ""
    for _ in range(6):
        n, r = divmod(n, 36)
        out = alphabet[r] + out
    return out + os.urandom(1).hex()


def parse_config(argv: list[str] | None = None, env: dict | None = None) -> CityConfig:
    env = dict(os.environ if env is None else env)
    defaults = CityConfig()

    def e(name: str, default: object) -> str:
        value = env.get(name)
        return str(default) if value in (None, "") else value

    parser = argparse.ArgumentParser(
        prog="python -m deploy.sim", description=deploy.sim.__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--gateway", default=e("CITY_GATEWAY", defaults.gateway))
    parser.add_argument("--drivers", type=int, default=int(e("CITY_DRIVERS", defaults.drivers)))
    parser.add_argument("--riders", type=int, default=int(e("CITY_RIDERS", defaults.riders)))
    parser.add_argument("--pace", type=float, default=float(e("CITY_PACE", defaults.pace)))
    parser.add_argument("--duration", type=float,
                        default=float(e("CITY_DURATION_S", defaults.duration_s)))
    parser.add_argument("--seed", type=int, default=int(e("CITY_SEED", "-1")))
    parser.add_argument("--region", default=e("CITY_REGION", defaults.region))
    args = parser.parse_args(argv)
    if args.drivers < 0 or args.riders < 0:
        parser.error("--drivers and --riders must be 0 or more")
    if args.pace <= 0:
        parser.error("--pace must be positive")
    return CityConfig(
        gateway=args.gateway.rstrip("/"),
        drivers=args.drivers,
        riders=args.riders,
        pace=args.pace,
        duration_s=max(0.0, args.duration),
        seed=None if args.seed < 0 else args.seed,
        region=args.region,
        location_every_s=float(e("CITY_LOCATION_EVERY_S", defaults.location_every_s)),
        log_every_s=float(e("CITY_LOG_EVERY_S", defaults.log_every_s)),
        run_id=e("CITY_RUN_ID", "") or new_run_id(),
        secret=e("CITY_SECRET", defaults.secret),
    )
