"""Administration of streams and their consumer groups: create a group,
remove the consumers that left, read the groups' lag, trim a stream below
what every group still needs."""

from __future__ import annotations

from redis.exceptions import ResponseError

from ..scripts import Library, fcall
from ..timeutil import now_ms


async def ensure_group(redis, stream: str, group: str, start_id: str = "0") -> bool:
    """Create the group (and the stream) unless it exists. True if created."""
    try:
        await redis.xgroup_create(stream, group, id=start_id, mkstream=True)
        return True
    except ResponseError as exc:
        if str(exc).startswith("BUSYGROUP"):
            return False
        raise


def _next_id(stream_id: str) -> str:
    ms, seq = stream_id.split("-")
    return f"{ms}-{int(seq) + 1}"


# XGROUP DELCONSUMER drops a consumer's pending entries from the PEL, after
# which nobody can claim them again: the check that nothing is pending and the
# delete are one atomic step. KEYS[1] the stream; ARGV[1] the group, ARGV[2]
# the idle time (ms) a consumer must exceed, ARGV[3] one consumer's name or ''.
_REMOVE_CONSUMERS = """
local removed = {}
for _, fields in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local c = {}
  for i = 1, #fields, 2 do c[fields[i]] = fields[i + 1] end
  if c.pending == 0 and c.idle > tonumber(ARGV[2])
      and (ARGV[3] == '' or c.name == ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], c.name)
    removed[#removed + 1] = c.name
  end
end
return removed
"""

# The functions of this module (loaded by the admin with the others, common/scripts.py).
LIBRARY = Library("ridehail_streams", "streams", {"remove_consumers": _REMOVE_CONSUMERS})


async def remove_consumers(redis, stream: str, group: str, *, idle_ms: int = -1,
                           name: str = "") -> list[str]:
    """Delete the consumers of `group` (only `name`, if given) that have no
    pending entries and were idle longer than `idle_ms`; their names. A
    missing stream or group has none."""
    try:
        removed = await fcall(redis, LIBRARY.function("remove_consumers"), [stream],
                              [group, idle_ms, name])
    except ResponseError as exc:
        if str(exc).startswith("NOGROUP") or "no such key" in str(exc):
            return []
        raise
    return [n.decode() if isinstance(n, bytes) else n for n in removed]


async def group_stats(redis, stream: str) -> list[dict]:
    """Lag and pending count of every group on a stream (XINFO GROUPS)."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return []
    return [
        {
            "stream": stream,
            "group": g["name"],
            "consumers": g["consumers"],
            "pending": g["pending"],
            "lag": g.get("lag"),
            "last_delivered_id": g["last-delivered-id"],
        }
        for g in groups
    ]


async def safe_trim_id(redis, stream: str) -> str | None:
    """The lowest id still needed by any group: pending or not yet read."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return None
    floor: str | None = None

    def lower(a: str | None, b: str) -> str:
        if a is None:
            return b
        am, aseq = (int(x) for x in a.split("-"))
        bm, bseq = (int(x) for x in b.split("-"))
        return a if (am, aseq) <= (bm, bseq) else b

    for g in groups:
        candidate = _next_id(g["last-delivered-id"])
        if g["pending"]:
            summary = await redis.xpending(stream, g["name"])
            if summary and summary.get("min"):
                candidate = lower(candidate, summary["min"])
        floor = lower(floor, candidate)
    return floor


async def trim_stream(redis, stream: str, keep_ms: int) -> int:
    """XTRIM MINID below both the groups' floor and the retention window,
    never by a bare MAXLEN that could drop work not yet done."""
    retention = f"{max(now_ms() - keep_ms, 0)}-0"
    floor = await safe_trim_id(redis, stream)
    minid = retention
    if floor is not None:
        fm, fs = (int(x) for x in floor.split("-"))
        rm = int(retention.split("-")[0])
        if (fm, fs) < (rm, 0):
            minid = floor
    return await redis.xtrim(stream, minid=minid, approximate=False)
