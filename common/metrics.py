"""Prometheus metrics shared by every process (one registry per process)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests handled", ["service", "method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["service", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UPSTREAM_ERRORS = Counter(
    "upstream_errors_total", "Failed calls to an upstream service", ["upstream", "kind"]
)
CIRCUIT_STATE = Gauge(
    "circuit_breaker_state", "Circuit breaker state (0 closed, 1 half-open, 2 open)", ["upstream"]
)
EVENTS_PUBLISHED = Counter("events_published_total", "Events appended to streams", ["type"])
EVENTS_CONSUMED = Counter(
    "events_consumed_total", "Stream entries handled by a consumer group", ["group", "outcome"]
)
DEAD_LETTERS = Counter("dead_letters_total", "Entries moved to the dead-letter stream", ["group"])
CONSUMERS_REMOVED = Counter(
    "stream_consumers_removed_total",
    "Consumers removed from a group: on a graceful stop, or idle after a crash",
    ["group", "reason"],
)
CONSUMER_LAG = Gauge(
    "consumer_group_lag", "Entries not yet delivered to a consumer group", ["stream", "group"]
)
CONSUMER_PENDING = Gauge(
    "consumer_group_pending", "Entries delivered but not acknowledged", ["stream", "group"]
)


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST
