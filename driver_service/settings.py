"""driver_service's settings: the shared ones (common/settings.py) and its own."""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import DEFAULT_PORTS, ConsumerSettings, env


@dataclass(frozen=True, slots=True)
class DriverSettings(ConsumerSettings):
    service: str = "driver_service"
    port: int = env("PORT", DEFAULT_PORTS["driver_service"])
    sweep_interval_s: float = env("SWEEP_INTERVAL_S", 0.25)
    # History kept on the region streams for live readers (SSE), trimmed
    # below what any group still needs.
    stream_retention_s: float = env("STREAM_RETENTION_S", 3600.0)
