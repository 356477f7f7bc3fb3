"""Object ids carry their region, so every key can be computed from an id."""

from __future__ import annotations

import os
import re
import threading
import time

RIDER, DRIVER, TRIP = "rdr", "drv", "trp"
_ID = re.compile(r"^(rdr|drv|trp)_([a-z0-9]{1,16})_([0-9A-HJKMNP-TV-Z]{26})$")

# ULIDs (48-bit millisecond time, 80 random bits, Crockford base32), made
# here rather than by python-ulid's objects: the same strings, strictly
# increasing within a process like python-ulid's default generator (the
# random part is incremented within a millisecond), at a fifth of the cost.
# Every state-changing script takes fresh event ids, so this is on every
# write path.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)  # 10 bits per entry
_RANDOM_MAX = (1 << 80) - 1
_lock = threading.Lock()
_last_ms = -1
_last_random = 0


def new_ulid() -> str:
    global _last_ms, _last_random
    ms = time.time_ns() // 1_000_000
    with _lock:
        if ms == _last_ms and _last_random < _RANDOM_MAX:
            _last_random += 1
        else:
            _last_ms = ms
            _last_random = int.from_bytes(os.urandom(10), "big")
        value = (ms << 80) | _last_random
    p = _PAIRS
    # 130 bits in 13 pairs of characters; the top two bits are always zero.
    return (
        p[value >> 120] + p[(value >> 110) & 1023] + p[(value >> 100) & 1023]
        + p[(value >> 90) & 1023] + p[(value >> 80) & 1023] + p[(value >> 70) & 1023]
        + p[(value >> 60) & 1023] + p[(value >> 50) & 1023] + p[(value >> 40) & 1023]
        + p[(value >> 30) & 1023] + p[(value >> 20) & 1023] + p[(value >> 10) & 1023]
        + p[value & 1023]
    )


def new_id(kind: str, region: str) -> str:
    return f"{kind}_{region}_{new_ulid()}"


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
