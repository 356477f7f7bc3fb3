"""Settings of a service under test: its defaults, the test server and short timers."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any, TypeVar

from common.settings import Settings
from tests.internal import INTERNAL_TOKEN

S = TypeVar("S", bound=Settings)

# Short timers for every service that has them.
TEST_VALUES: dict[str, Any] = {
    "claim_idle_ms": 200,
    "sweep_interval_s": 0.05,
    "internal_token": INTERNAL_TOKEN,
}


def names(settings_type: type[Settings]) -> frozenset[str]:
    return frozenset(f.name for f in fields(settings_type))


def service_settings(settings_type: type[S], redis_url: str, **overrides: Any) -> S:
    """`settings_type` read from an empty environment, with the test values it
    has and `overrides` (each must be one of its settings)."""
    own = names(settings_type)
    base = settings_type.from_env(env={}, redis_url=redis_url,
                                  **{k: v for k, v in TEST_VALUES.items() if k in own})
    return replace(base, **overrides)


def split_overrides(overrides: dict[str, Any], *types: type[Settings]) -> list[dict[str, Any]]:
    """`overrides` shared out among the settings types that have them; a name
    none of them has is an error (a mistyped override must not pass unseen)."""
    unknown = set(overrides) - set().union(*(names(t) for t in types))
    if unknown:
        raise TypeError(f"no service has the settings {sorted(unknown)}")
    return [{k: v for k, v in overrides.items() if k in names(t)} for t in types]
