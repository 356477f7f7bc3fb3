"""The city: its population, the summary line, starting and stopping; main()."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import statistics
import sys
import time

import aiohttp
from tenacity import RetryCallState

from common.retry import retrying
from deploy.sim.client import Api, Reply, Stats
from deploy.sim.config import CityConfig, parse_config
from deploy.sim.driver import Driver
from deploy.sim.person import Person
from deploy.sim.rider import Rider
from deploy.sim.streets import StreetGraph, load_graph
from deploy.sim.vocabulary import PATH as VOCABULARY_PATH
from deploy.sim.vocabulary import Vocabulary, VocabularyError

logger = logging.getLogger(__name__)


class City:
    def __init__(self, cfg: CityConfig, graph: StreetGraph | None = None) -> None:
        self.cfg = cfg
        self.graph = graph or load_graph(cfg.region)
        self.stats = Stats()
        self.api: Api = None  # type: ignore[assignment]  # set in run()
        self.vocabulary: Vocabulary = None  # type: ignore[assignment]  # read in run()
        self.drivers: list[Driver] = []
        self.riders: list[Rider] = []
        self.started = time.monotonic()

    async def wait_for_gateway(self) -> bool:
        """Poll /readyz until it answers 200, for up to start_timeout_s."""

        async def ready() -> Reply:
            return await self.api.call("GET", "/readyz", attempts=1, timeout_s=3)

        def waiting(retry_state: RetryCallState) -> None:
            if retry_state.attempt_number == 1:
                reply = retry_state.outcome.result()
                logger.info("waiting for %s/readyz (%s)", self.cfg.gateway, reply.describe())

        policy = retrying(within_s=self.cfg.start_timeout_s, retry_on=lambda r: r.status != 200,
                          cap_s=1.0, on_retry=waiting)
        return (await policy(ready)).status == 200

    async def read_vocabulary(self) -> Vocabulary:
        """The statuses, events, transitions and products, as the system defines them."""
        reply = await self.api.call("GET", VOCABULARY_PATH)
        if reply.status != 200:
            raise VocabularyError(f"GET {VOCABULARY_PATH}: {reply.describe()}")
        return Vocabulary.from_json(reply.body)

    def summary(self) -> str:
        c = self.stats.counts
        drivers = self.drivers
        online = sum(1 for d in drivers if d.online)
        busy = sum(1 for d in drivers if d.trip_id)
        vocabulary = self.vocabulary
        waiting = sum(1 for r in self.riders if vocabulary and r.state == vocabulary.initial)
        riding = sum(1 for r in self.riders if vocabulary and r.state in vocabulary.with_driver)
        waits = self.stats.to_assigned_s
        p50 = f"{statistics.median(waits):.1f}s" if waits else "-"
        errors = ", ".join(f"{k}x{v}" for k, v in sorted(self.stats.statuses.items(), key=str))
        return (
            f"city {time.monotonic() - self.started:5.0f}s | drivers {len(drivers)} "
            f"(online {online}, on a trip {busy}) riders {len(self.riders)} "
            f"(waiting {waiting}, riding {riding}) | trips requested {c['trips_requested']} "
            f"completed {c['trips_completed']} cancelled {c['trips_cancelled']} "
            f"expired {c['trips_expired']} rated {c['ratings']} | offers {c['offers']} "
            f"accepted {c['offers_accepted']} declined {c['offers_declined']} "
            f"ignored {c['offers_ignored']} lost {c['offers_lost']} | request-to-assigned "
            f"p50 {p50} | http {self.stats.requests} retries {c['retries']}"
            + (f" errors {errors}" if errors else "")
        )

    async def report(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.log_every_s)
            logger.info("%s", self.summary())

    async def run(self, stop: asyncio.Event) -> int:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
        async with aiohttp.ClientSession(connector=connector) as session:
            self.api = Api(session, self.cfg.gateway, self.stats)
            logger.info(
                "city %s: %d drivers, %d riders, pace x%g, region %s, %d street corners, "
                "gateway %s", self.cfg.run_id, self.cfg.drivers, self.cfg.riders, self.cfg.pace,
                self.cfg.region, len(self.graph.nodes), self.cfg.gateway,
            )
            if not await self.wait_for_gateway():
                logger.error("the gateway at %s never became ready", self.cfg.gateway)
                return 1
            try:
                self.vocabulary = await self.read_vocabulary()
            except VocabularyError as exc:
                logger.error("the gateway at %s gave no trip vocabulary: %s",
                             self.cfg.gateway, exc)
                return 1
            self.drivers = [Driver(self, i) for i in range(self.cfg.drivers)]
            self.riders = [Rider(self, i) for i in range(self.cfg.riders)]
            tasks: list[asyncio.Task] = [asyncio.create_task(self.report())]
            # Drivers first, so the first riders find cars; spread the sign-ups out
            # (each one hashes a password).
            people: list[Person] = [*self.drivers, *self.riders]
            ramp_s = min(15.0, 0.3 * len(people))
            for k, person in enumerate(people):
                delay = ramp_s * k / max(1, len(people))
                tasks.append(asyncio.create_task(self.start_later(person, delay)))
            stopper = asyncio.create_task(stop.wait())
            if self.cfg.duration_s:
                timer = asyncio.create_task(asyncio.sleep(self.cfg.duration_s))
            else:
                timer = asyncio.create_task(asyncio.Event().wait())
            await asyncio.wait([stopper, timer], return_when=asyncio.FIRST_COMPLETED)
            logger.info("stopping: %s", self.summary())
            for task in [*tasks, stopper, timer]:
                task.cancel()
            await asyncio.gather(*tasks, stopper, timer, return_exceptions=True)
            # Riders first (a cancelled trip frees its driver), then drivers.
            for group in (self.riders, self.drivers):
                try:
                    await asyncio.wait_for(
                        asyncio.gather(*(p.leave() for p in group), return_exceptions=True), 3
                    )
                except TimeoutError:
                    logger.warning("some %s did not sign off in time", type(group[0]).__name__)
        logger.info("stopped")
        return 0

    @staticmethod
    async def start_later(person: Person, delay: float) -> None:
        await asyncio.sleep(delay)
        await person.run()


def main(argv: list[str] | None = None) -> int:
    cfg = parse_config(argv)
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    if cfg.seed is not None:
        random.seed(cfg.seed)

    async def amain() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await City(cfg).run(stop)

    return asyncio.run(amain())
