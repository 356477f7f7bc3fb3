"""What became of each delivery of an entry, per consumer group: the
record of every delivery and acknowledgement (the lifecycle of a message that
the trip timeline shows), and the move to the dead-letter stream.

One hash per entry (`keys.deliveries`); fields `group|attempt` (the
delivery: consumer, attempts, delivered_at), `group|attempt|acked_at` or
`group|attempt|error`, and `group|dead` when it was dead-lettered, so
redeliveries keep their history. Kept `DELIVERY_RECORD_TTL_S`; the archiver
deletes those of a trip gone cold.
"""

from __future__ import annotations

import orjson

from .. import keys
from ..timeutil import now_ms
from .entries import Entry

DELIVERY_RECORD_TTL_S = 7 * 86400


def record_commands(region: str, stream_id: str, name: str, value) -> tuple[tuple, tuple]:
    """The commands writing one field of an entry's record: `name` is
    `group|attempt`, with a `|acked_at` or `|error` suffix for the outcome."""
    key = keys.deliveries(region, stream_id)
    return ("HSET", key, name, value), ("EXPIRE", key, DELIVERY_RECORD_TTL_S)


def record_dead(target, region: str, stream_id: str, group: str, reason: str,
                attempts: int) -> None:
    """Queue the mark of an entry `group` dead-lettered."""
    target.hset(keys.deliveries(region, stream_id), f"{group}|dead",
                orjson.dumps({"reason": reason, "attempts": attempts}))


async def read_deliveries(redis, region: str, stream_id: str) -> list[dict]:
    """The deliveries of one entry, oldest first:
    [{group, consumer, delivered_at, acked_at, attempts, error?}] (times in ms)."""
    raw = await redis.hgetall(keys.deliveries(region, stream_id))
    out = []
    for name, value in raw.items():
        parts = name.split("|")
        if len(parts) != 2 or parts[1] == "dead":
            continue
        record = orjson.loads(value)
        record["group"] = parts[0]
        acked = raw.get(f"{name}|acked_at")
        record["acked_at"] = int(acked) if acked else None
        error = raw.get(f"{name}|error")
        if error:
            record["error"] = error
        out.append(record)
    out.sort(key=lambda r: (r["group"], r["attempts"]))
    return out


async def dead_letter(redis, dead_stream: str, stream: str, group: str, consumer: str,
                      entry: Entry, reason: str, record_it: bool) -> None:
    """Move an entry to the dead-letter stream, with the reason, and ack it
    (and mark its record, `record_it`), in one transaction."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.xadd(
            dead_stream,
            {
                **entry.fields,
                "source_stream": stream,
                "source_id": entry.id,
                "group": group,
                "consumer": consumer,
                "attempts": str(entry.attempts),
                "reason": reason,
                "dead_at": str(now_ms()),
            },
        )
        pipe.xack(stream, group, entry.id)
        if record_it:
            record_dead(pipe, keys.stream_region(stream), entry.id, group, reason,
                        entry.attempts)
        await pipe.execute()
