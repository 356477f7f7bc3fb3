"""Object ids carry their region, so every key can be computed from an id."""

from __future__ import annotations

import re

from ulid import ULID

RIDER, DRIVER, TRIP = "rdr", "drv", "trp"
_ID = re.compile(r"^(rdr|drv|trp)_([a-z0-9]{1,16})_([0-9A-HJKMNP-TV-Z]{26})$")


def new_ulid() -> str:
    return str(ULID())


def new_id(kind: str, region: str) -> str:
    return f"{kind}_{region}_{ULID()}"


def parse_id(value: str) -> tuple[str, str] | None:
    """Return (kind, region) of a well-formed id, else None."""
    m = _ID.match(value)
    if m is None:
        return None
    return m.group(1), m.group(2)


def is_id(value: str, kind: str) -> bool:
    parsed = parse_id(value)
    return parsed is not None and parsed[0] == kind


def region_of(value: str) -> str:
    parsed = parse_id(value)
    if parsed is None:
        raise ValueError(f"not an id: {value!r}")
    return parsed[1]
