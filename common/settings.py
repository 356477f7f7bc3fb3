"""Typed settings per service, read from the environment in `main()` and passed in.

Each setting is declared once, as a field of a frozen dataclass made with
`env(NAME, default)`: its variable, its default and how its text is read sit
on one line, and `from_env` reads every field from that table. A value that
cannot be read stops the process with a message naming the variable
(`SettingsError`); an empty variable counts as unset. Secrets are left out of
`repr`, so a settings object in a log line or a traceback shows none.

`Settings` holds what every process reads; `ConsumerSettings` adds what a
process with consumer groups reads; each service extends one of them with
its own (`trip_service/settings.py`, `driver_service/settings.py`,
`gateway/config.py`). A test builds its own with keyword arguments or
`dataclasses.replace(...)`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any, TypeVar

from .regions import DEFAULT_REGIONS, Region, parse_regions

DEFAULT_PORTS = {"gateway": 8080, "trip_service": 8081, "driver_service": 8082}

S = TypeVar("S", bound="Settings")


class SettingsError(ValueError):
    """An environment variable holds a value its setting cannot take."""


def env(
    name: str,
    default: Any,
    *,
    parse: Callable[[str], Any] | None = None,
    choices: tuple[str, ...] = (),
    secret: bool = False,
) -> Any:
    """A field read from the variable `name`; `default` when it is unset or
    empty. `parse` turns its text into the value (by default the type of
    `default`: int, float or str); `choices` are the only values allowed."""
    return field(
        default=default,
        repr=not secret,
        metadata={"env": name, "parse": parse, "choices": choices},
    )


def _read(f: Field, text: str) -> Any:
    name = f.metadata["env"]
    # A secret's value stays out of the message (it may end up in a log).
    shown = repr(text) if f.repr else "(hidden)"
    parse = f.metadata["parse"] or type(f.default)
    try:
        value = parse(text)
    except (TypeError, ValueError, KeyError) as exc:
        reason = f": {exc}" if f.repr else ""
        raise SettingsError(f"{name}={shown} is not valid{reason}") from None
    choices = f.metadata["choices"]
    if choices and value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, not {shown}")
    return value


def env_fields(cls: type) -> dict[str, Field]:
    """The variable name of each setting of `cls` read from the environment."""
    return {f.metadata["env"]: f for f in fields(cls) if "env" in f.metadata}


def comma_list(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def url(text: str) -> str:
    return text.rstrip("/")


def _upper(text: str) -> str:
    return text.upper()


@dataclass(frozen=True, slots=True)
class Settings:
    """What every process reads."""

    service: str = "gateway"
    host: str = env("HOST", "0.0.0.0")
    port: int = env("PORT", DEFAULT_PORTS["gateway"])
    # The operations listener (the gateway's): /metrics and /readyz in full,
    # no login; a port the deployment keeps off the public network. 0: none.
    ops_port: int = env("OPS_PORT", 0)
    # 1: several processes of one service on one host share its ports
    # (SO_REUSEPORT); the kernel spreads new connections among them.
    reuse_port: int = env("REUSE_PORT", 0, choices=(0, 1))
    redis_url: str = env("REDIS_URL", "redis://127.0.0.1:6379/0", secret=True)
    # Connections per process; callers wait for a free one rather than fail.
    redis_max_connections: int = env("REDIS_MAX_CONNECTIONS", 64)
    regions: tuple[Region, ...] = env("REGIONS", DEFAULT_REGIONS, parse=parse_regions)
    # `always`: an acknowledged write is on disk (AOF fsync per write).
    # `everysec`: faster, may lose up to one second of acknowledged writes.
    durability: str = env("DURABILITY", "always", choices=("always", "everysec"))
    # Replicas that must confirm a write (WAIT/WAITAOF) before it is acknowledged.
    wait_replicas: int = env("WAIT_REPLICAS", 0)
    # The service-to-service credential (common/internal.py): the gateway
    # sends it, trip_service and driver_service require it.
    internal_token: str = env("INTERNAL_TOKEN", "", secret=True)
    log_level: str = env("LOG_LEVEL", "INFO", parse=_upper)
    # The trip rules more than one service applies (the gateway shows them).
    offer_timeout_s: float = env("OFFER_TIMEOUT_S", 15.0)
    trip_expiry_s: float = env("TRIP_EXPIRY_S", 120.0)
    dispatch_radius_m: float = env("DISPATCH_RADIUS_M", 5000.0)

    @property
    def default_region(self) -> Region:
        return self.regions[0]

    def region(self, name: str) -> Region | None:
        for region in self.regions:
            if region.name == name:
                return region
        return None

    @classmethod
    def from_env(cls: type[S], env: Mapping[str, str] | None = None, **overrides: Any) -> S:
        """Every setting from `env` (the process environment by default),
        then `overrides`. Raises `SettingsError` naming a bad variable."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, f in env_fields(cls).items():
            text = source.get(name)
            if text not in (None, ""):
                values[f.name] = _read(f, text)
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ConsumerSettings(Settings):
    """What a process with consumer groups reads besides."""

    max_deliveries: int = env("MAX_DELIVERIES", 5)
    # A pending entry idle this long is taken over from its (dead) consumer.
    claim_idle_ms: int = env("CLAIM_IDLE_MS", 10_000)
    # Empty: one made up per process (`default_consumer_name`).
    consumer_name: str = env("CONSUMER_NAME", "")

    def __post_init__(self) -> None:
        if not self.consumer_name:
            object.__setattr__(self, "consumer_name", default_consumer_name(self.service))


def default_consumer_name(service: str) -> str:
    """Unique per process: a restarted process is a new consumer, its
    predecessor's pending entries are reclaimed by idle time."""
    return f"{service}-{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
