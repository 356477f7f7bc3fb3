"""A background loop that loses Redis logs it once, not once per attempt."""

from __future__ import annotations

import asyncio
import logging

from common import keys
from common.embedded import EmbeddedRedis, free_port
from common.redisconn import create_redis
from common.scripts import load as load_functions
from common.streams import StreamConsumer
from tests.waiting import eventually


async def test_a_consumer_logs_one_line_when_redis_goes_and_one_when_it_is_back(
    tmp_path, caplog
):
    server = EmbeddedRedis(tmp_path / "redis", free_port()).start()
    load_functions(server.url)  # what the admin does before the services start
    client = create_redis(server.url)
    handled: list[str] = []

    async def handler(entry):
        handled.append(entry.id)

    stream = keys.events("sf")
    consumer = StreamConsumer(client, stream, "outage", "c1", handler, block_ms=50,
                              claim_idle_ms=100)
    task = asyncio.create_task(consumer.run())
    caplog.set_level(logging.INFO, logger="common.streams.consumer")
    try:
        await client.xadd(stream, {"e": "x"})
        await eventually(lambda: len(handled) == 1, timeout=10)
        server.kill()
        # Several attempts fail while it is down (the backoff starts at 1 s).
        await eventually(lambda: sum("unreachable" in r.getMessage()
                                     for r in caplog.records) == 1, timeout=10)
        await eventually(lambda: consumer.outage.failures >= 2, timeout=20)
        server.start()
        await eventually(lambda: "back after" in caplog.text, timeout=30)
        await client.xadd(stream, {"e": "y"})
        await eventually(lambda: len(handled) == 2, timeout=10)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 10)
        await client.aclose()
        server.stop()
    lines = [r for r in caplog.records if r.name == "common.streams.consumer"]
    down = [r for r in lines if "unreachable" in r.getMessage()]
    back = [r for r in lines if "back after" in r.getMessage()]
    assert len(down) == 1 and len(back) == 1, [r.getMessage() for r in lines]
    assert not [r for r in lines if r.exc_info], "a traceback per failed attempt"
    failed = int(back[0].getMessage().split("back after ")[1].split()[0])
    assert failed >= 2
