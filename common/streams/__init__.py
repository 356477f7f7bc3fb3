"""Durable asynchronous messaging on Redis Streams.

- `consumer`: `StreamConsumer`, one consumer of a consumer group on one
  stream (read, handle, ack, reclaim, dead-letter, leave the group).
- `entries`: the `Entry` a handler gets, and the lean read and ack of a batch
  (`ConsumerPipe`: reads and acks written back to back on a consumer's own
  connection).
- `deliveries`: what became of each delivery of an entry (the records the
  trip timeline shows) and the move to the dead-letter stream.
- `admin`: groups and streams: create a group, remove the consumers that
  left, lag and pending counts, trimming below what every group still needs.
"""

from .admin import (
    LIBRARY,
    ensure_group,
    group_stats,
    remove_consumers,
    safe_trim_id,
    trim_stream,
)
from .consumer import ConsumerStats, StreamConsumer
from .deliveries import read_deliveries
from .entries import Entry, Handler

__all__ = [
    "LIBRARY",
    "ConsumerStats",
    "Entry",
    "Handler",
    "StreamConsumer",
    "ensure_group",
    "group_stats",
    "read_deliveries",
    "remove_consumers",
    "safe_trim_id",
    "trim_stream",
]
