"""A document's member holding JSON text: the fields written once and never
changed (a trip's request, a driver's profile) kept as one string, which
costs RedisJSON far less than as many members. No script writes into it;
readers see its fields at the top of the document (`unpack` here, `load_doc`
in common/lua/trips.lua)."""

from __future__ import annotations

import orjson


def unpack(doc: dict, member: str) -> dict:
    """The document with `member`'s fields at the top (a document of the
    older shape, or one unpacked already, as it is)."""
    packed = doc.get(member)
    if not isinstance(packed, str):
        return doc
    out = {k: v for k, v in doc.items() if k != member}
    out.update(orjson.loads(packed))
    return out
