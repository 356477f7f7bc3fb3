"""trip_service's settings: the shared ones (common/settings.py) and its own."""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import DEFAULT_PORTS, ConsumerSettings, env


@dataclass(frozen=True, slots=True)
class TripSettings(ConsumerSettings):
    service: str = "trip_service"
    port: int = env("PORT", DEFAULT_PORTS["trip_service"])
    # The cold store (PostgreSQL); empty: finished trips stay hot.
    database_url: str = env("DATABASE_URL", "", secret=True)
    # How long a finished trip stays in Redis (and can be rated) before it goes cold.
    hot_retention_s: float = env("HOT_RETENTION_S", 86400.0)
    archive_interval_s: float = env("ARCHIVE_INTERVAL_S", 1.0)
    archive_batch: int = env("ARCHIVE_BATCH", 100)
    # A claimed batch is its claimer's this long; a claimer that died leaves
    # it due again after that.
    archive_lease_s: float = env("ARCHIVE_LEASE_S", 60.0)
