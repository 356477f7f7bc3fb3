"""The stream entries a consumer hands to its handler, and the lean
wire-level read and acknowledgement of a batch of them (through the pool,
or pipelined on a consumer's own connection: `ConsumerPipe`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from hiredis import pack_command
from redis.client import NEVER_DECODE

class Entry:
    """One stream entry handed to a handler.

    `fields` is built on first use from the flat reply of XREADGROUP
    (`pairs`), so a handler that looks at a few entries of a busy batch pays
    for those only."""

    __slots__ = ("stream", "id", "_fields", "_pairs", "attempts")

    def __init__(
        self,
        stream: str,
        id: str,
        fields: dict[str, str] | None = None,
        attempts: int = 1,
        pairs: list[str] | None = None,
    ) -> None:
        self.stream = stream
        self.id = id
        self._fields = fields
        self._pairs = pairs
        self.attempts = attempts

    @property
    def fields(self) -> dict[str, str]:
        fields = self._fields
        if fields is None:
            it = iter(self._pairs or ())
            fields = self._fields = dict(zip(it, it))
        return fields

    @fields.setter
    def fields(self, value: dict[str, str]) -> None:
        self._fields = value

    @property
    def type(self) -> str:
        return self.fields.get("type", "")

    @property
    def envelope(self) -> dict[str, Any]:
        return orjson.loads(self.fields["env"])

    def __repr__(self) -> str:
        return (
            f"Entry(stream={self.stream!r}, id={self.id!r}, fields={self.fields!r}, "
            f"attempts={self.attempts!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entry):
            return NotImplemented
        return (self.stream, self.id, self.fields, self.attempts) == (
            other.stream, other.id, other.fields, other.attempts
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces


class UndecodedEntry(Entry):
    """An entry read as bytes for a client that decodes replies: the id is
    decoded at once, the fields on first use (hiredis decoding every field
    of a batch costs more than the rest of the read)."""

    __slots__ = ()

    @property
    def fields(self) -> dict[str, str]:
        fields = self._fields
        if fields is None:
            it = iter([p.decode() for p in self._pairs or ()])
            fields = self._fields = dict(zip(it, it))
        return fields

    @fields.setter
    def fields(self, value: dict[str, str]) -> None:
        self._fields = value


Handler = Callable[[Entry], Awaitable[None]]


async def read_lean(redis, stream: str, group: str, consumer: str, count: int,
                    block_ms: int | None, decode: bool) -> list[Entry]:
    """XREADGROUP > on a standalone redis-py client, the reply as hiredis
    parsed it: a command name given as bytes has no response callback, so
    redis-py's per-entry conversion is skipped. `decode`: the client decodes
    replies (the entries are then read as bytes and decoded on first use)."""
    wait = (b"BLOCK", block_ms) if block_ms is not None else ()
    reply = await redis.execute_command(
        b"XREADGROUP", b"GROUP", group, consumer, b"COUNT", count,
        *wait, b"STREAMS", stream, b">",
        **({NEVER_DECODE: True} if decode else {}),
    )
    return entries_of(reply, stream, decode)


def entries_of(reply, stream: str, decode: bool) -> list[Entry]:
    """The entries of an XREADGROUP reply of one stream read undecoded."""
    if not reply:
        return []
    # RESP2: [[stream, entries]]; RESP3: {stream: entries}.
    rows = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
    # A deleted entry comes back without fields: nothing to handle.
    if decode:
        return [UndecodedEntry(stream, sid.decode(), None, 1, pairs)
                for sid, pairs in rows if pairs]
    return [Entry(stream, sid, None, 1, pairs) for sid, pairs in rows if pairs]


async def xack_packed(redis, stream: str, group: str, ids: list[str]) -> None:
    """XACK of a whole batch, packed by hiredis: redis-py packs each
    argument in Python, which costs more than the rest of the ack."""
    pool = redis.connection_pool
    conn = await pool.get_connection()
    try:
        await conn.send_packed_command(
            pack_command((b"XACK", stream, group, *ids)), check_health=False
        )
        await conn.read_response()
    except BaseException:
        await conn.disconnect()
        raise
    finally:
        await pool.release(conn)


class ConsumerPipe:
    """A consumer's own connection, on which its reads, acks and delivery
    records are written back to back without waiting for their replies: the
    read of the next batch goes out before the batch in hand is handled, and
    its ack after, so the server works through both while this process
    handles the next.

    Replies come back in the order written; `_owed` says what each one is:
    `_READ` (the entries of a read), the count of ids of an XACK (confirmed
    through `on_acked`), or `_WRITE` (a record; its reply only checked).
    Reading the reply of a read first takes the replies written before it.
    An ack not yet confirmed when the connection breaks leaves its entries
    pending: they are delivered again (at least once)."""

    _READ = -1
    _WRITE = 0

    def __init__(self, redis, stream: str, group: str, consumer: str, count: int,
                 block_ms: int, decode: bool, on_acked: Callable[[int], None]) -> None:
        self._pool = redis.connection_pool
        self._conn = None
        self._owed: deque[int] = deque()
        self._stream = stream
        self._decode = decode
        self._on_acked = on_acked
        head = (b"XREADGROUP", b"GROUP", group, consumer, b"COUNT", count)
        tail = (b"STREAMS", stream, b">")
        self._read_now = pack_command((*head, *tail))
        self._read_blocking = pack_command((*head, b"BLOCK", block_ms, *tail))
        self._ack_head = (b"XACK", stream, group)

    @property
    def reading(self) -> bool:
        """A read is written and its reply not yet taken."""
        return self._READ in self._owed

    @property
    def owing(self) -> bool:
        return bool(self._owed)

    async def send(self, ack: list | None = None, read: bool = False,
                   block: bool = False, writes: list[tuple] | None = None) -> None:
        """Write an XACK of `ack`, then the commands `writes` (argument
        tuples: records whose replies are only checked), then a read (with
        BLOCK: `block`), in one write."""
        parts = []
        if ack:
            parts.append(pack_command((*self._ack_head, *ack)))
        if writes:
            parts.extend(pack_command(args) for args in writes)
        if read:
            parts.append(self._read_blocking if block else self._read_now)
        if not parts:
            return
        conn = self._conn
        if conn is None:
            conn = self._pool.make_connection()
            self._conn = conn
        try:
            await conn.send_packed_command(parts, check_health=False)
        except BaseException:
            await self.reset()
            raise
        owed = self._owed
        if ack:
            owed.append(len(ack))
        if writes:
            owed.extend([self._WRITE] * len(writes))
        if read:
            owed.append(self._READ)

    async def take(self) -> list[Entry] | None:
        """The entries of the next read written, after confirming the acks
        and records written before it; None when no read is owed (acks and
        records confirmed). An error reply (of a record too) raises, and
        drops the connection with what it owed."""
        owed = self._owed
        conn = self._conn
        try:
            while owed:
                reply = await conn.read_response(disable_decoding=True)
                kind = owed.popleft()
                if kind == self._WRITE:
                    continue
                if kind != self._READ:
                    self._on_acked(kind)
                    continue
                return entries_of(reply, self._stream, self._decode)
        except BaseException:
            await self.reset()
            raise
        return None

    async def reset(self) -> None:
        """Drop the connection and what it owed (a broken or cancelled
        exchange leaves it in an unknown state)."""
        conn, self._conn = self._conn, None
        self._owed.clear()
        if conn is not None:
            await conn.disconnect(nowait=True)
