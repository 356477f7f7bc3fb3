"""Structured JSON log lines with the request id and trace id."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import orjson
from redis.exceptions import ConnectionError, RedisClusterException, TimeoutError

from .tracing import request_id_var, trace_id_var


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            line["request_id"] = rid
        tid = trace_id_var.get()
        if tid:
            line["trace_id"] = tid
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    import time

    handler = logging.StreamHandler(sys.stderr)
    formatter = JsonFormatter(service)
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log repeats what the metrics middleware already counts.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class Outage:
    """Logs a loop's lost dependency once, not once per attempt.

    A background loop (the sweeper, stream maintenance, a consumer) retries
    every second or so; while Redis is down each attempt fails the same way.
    `failed(exc)` logs one warning when a dependency becomes unreachable and
    counts the attempts after it; `ok()` logs one line when it is back, with
    that count and the time it took. Any other error is a fault of ours and
    keeps its traceback every time."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what
        self.failures = 0
        self.since = 0.0

    @staticmethod
    def unreachable(exc: BaseException) -> bool:
        return isinstance(exc, (ConnectionError, TimeoutError, RedisClusterException, OSError,
                                asyncio.TimeoutError))

    def failed(self, exc: BaseException) -> None:
        if not self.unreachable(exc):
            self.logger.error("%s failed", self.what, exc_info=exc)
            return
        if self.failures == 0:
            self.since = time.monotonic()
            self.logger.warning("%s: Redis unreachable (%r); retrying, quietly until it is back",
                                self.what, exc)
        self.failures += 1

    def ok(self) -> None:
        if self.failures:
            self.logger.info("%s: Redis back after %d failed attempts in %.1f s",
                                self.what, self.failures, time.monotonic() - self.since)
            self.failures = 0
