"""Newest-first pages over a sorted set (score = time in ms), with an opaque
cursor that stays right while new members arrive at the top."""

from __future__ import annotations

import base64

from common import errors

# Members sharing the cursor's score are skipped past; more than this many
# with one millisecond score would be cut short (ids are per-ms unique enough).
SAME_SCORE_SLACK = 64


def encode_cursor(score: float, member: str) -> str:
    raw = f"{int(score)}:{member}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        score, member = base64.urlsafe_b64decode(padded.encode()).decode().split(":", 1)
        return int(score), member
    except (ValueError, UnicodeDecodeError):
        raise errors.Invalid(
            "The cursor is not one this service issued.",
            errors=[{"field": "cursor", "message": "invalid cursor"}],
        ) from None


async def page_desc(redis, key: str, limit: int, cursor: str | None) -> tuple[list[str], str | None]:
    """Up to `limit` members, highest score first, after `cursor`."""
    if cursor:
        score, member = decode_cursor(cursor)
        rows = await redis.zrevrangebyscore(
            key, score, "-inf", start=0, num=limit + 1 + SAME_SCORE_SLACK, withscores=True
        )
        # Same-score members come in reverse lexical order: those >= the
        # cursor's member were on earlier pages.
        rows = [(m, s) for m, s in rows if not (int(s) == score and m >= member)]
    else:
        rows = await redis.zrevrange(key, 0, limit, withscores=True)
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1][1], page[-1][0]) if len(rows) > limit else None
    return [m for m, _ in page], next_cursor
