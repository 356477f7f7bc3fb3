"""Every Lua script a function with a signature, declared once in Python.

A `Script` names its keys (a NamedTuple whose `of(...)` builds them from
ids), its arguments (a NamedTuple, built with keywords) and its reply (a
function from the raw reply to a named value). The Lua body never reads
`KEYS[n]` or `ARGV[n]`: the library puts a binding in front of it,

    local K = {trip = KEYS[1], trip_events = KEYS[2], ...}
    local A = {driver_id = ARGV[4], sources = ARGV[5], ...}

generated from the same NamedTuples the caller fills, so both sides use the
names and no order can drift apart. `check_body` runs when a library is
built (at import): a body that reads `KEYS[`/`ARGV[` itself, uses a name the
declaration lacks or leaves a declared name unused fails loudly.

A key left None (optional: e.g. the driver of an offer, when there is none)
is sent as the script's first key, which shares its slot; the script knows
from its arguments that the key is absent and never touches it. A Keys tuple
may end with a field `more` (a tuple of keys) sent after the named ones; Lua
reads them as the list `K_MORE`.

The hot path pays no reflection: the NamedTuples are plain tuples, the
binding is built once per library, and a call splats them into FCALL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

import orjson

from . import errors, metrics

K = TypeVar("K", bound=tuple)
A = TypeVar("A", bound=tuple)
R = TypeVar("R")

MORE = "more"
_RAW = re.compile(r"\b(KEYS|ARGV)\s*\[")
_KEY_USE = re.compile(r"(?<![\w.])K\.([A-Za-z_]\w*)")
_ARG_USE = re.compile(r"(?<![\w.])A\.([A-Za-z_]\w*)")
_MORE_USE = re.compile(r"(?<![\w.])K_MORE\b")
_COMMENT = re.compile(r"--[^\n]*")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class ContractError(Exception):
    """A script's Lua and its declaration disagree (raised at import)."""


class Script(Generic[K, A, R]):
    """One Lua function: its name (the file stem), the NamedTuple of its
    keys, the NamedTuple of its arguments, how its reply reads, how many
    event ids it may use and whether a write of it waits for replicas under
    WAIT_REPLICAS (`waits`)."""

    __slots__ = ("name", "keys", "args", "reply", "n_events", "waits", "_more")

    def __init__(self, name: str, keys: type[K], args: type[A], reply: Callable[[Any], R], *,
                 n_events: int = 0, waits: bool = True) -> None:
        for field in (*keys._fields, *args._fields):
            if not _NAME.match(field):
                raise ContractError(f"{name}: {field!r} is not a Lua-friendly name")
        self.name = name
        self.keys = keys
        self.args = args
        self.reply = reply
        self.n_events = n_events
        self.waits = waits
        self._more = bool(keys._fields) and keys._fields[-1] == MORE

    def key_list(self, keys: K) -> Sequence[str]:
        """The KEYS of FCALL: named keys in order (None as the first), then `more`."""
        if type(keys) is not self.keys:
            raise TypeError(f"{self.name} takes {self.keys.__name__}, not {type(keys).__name__}")
        if self._more:
            *named, more = keys
            first = named[0]
            return [first if k is None else k for k in named] + list(more)
        if None not in keys:
            return keys
        first = keys[0]
        return [first if k is None else k for k in keys]

    def check_args(self, args: A) -> A:
        if type(args) is not self.args:
            raise TypeError(f"{self.name} takes {self.args.__name__}, not {type(args).__name__}")
        return args

    def binding(self, first_arg: int) -> str:
        """The Lua lines that name KEYS and ARGV for the body."""
        named = self.keys._fields[:-1] if self._more else self.keys._fields
        k = ", ".join(f"{f} = KEYS[{i}]" for i, f in enumerate(named, 1))
        a = ", ".join(f"{f} = ARGV[{i}]" for i, f in enumerate(self.args._fields, first_arg))
        lines = [f"local K = {{{k}}}", f"local A = {{{a}}}"]
        if self._more:
            lines.append(f"local K_MORE = {{}}\nfor i = {len(named) + 1}, #KEYS do "
                         "K_MORE[#K_MORE + 1] = KEYS[i] end")
        return "\n".join(lines) + "\n"

    def check_body(self, body: str) -> None:
        """The script's own Lua uses exactly the declared names, no positions."""
        code = _COMMENT.sub("", body)
        raw = _RAW.search(code)
        if raw:
            raise ContractError(f"{self.name}.lua reads {raw.group(1)}[...]: use K.<key>/A.<arg>")
        named = set(self.keys._fields) - {MORE}
        for what, pattern, declared in (("key", _KEY_USE, named),
                                        ("argument", _ARG_USE, set(self.args._fields))):
            used = set(pattern.findall(code))
            if used - declared:
                raise ContractError(
                    f"{self.name}.lua uses {what}s {sorted(used - declared)} that "
                    f"{self.name}'s declaration does not have"
                )
            if declared - used:
                raise ContractError(
                    f"{self.name}'s declaration has {what}s {sorted(declared - used)} that "
                    f"{self.name}.lua never uses"
                )
        if self._more and not _MORE_USE.search(code):
            raise ContractError(f"{self.name}.lua never reads its `more` keys (K_MORE)")

    def __repr__(self) -> str:
        return f"Script({self.name})"


# --- replies ---------------------------------------------------------------
class ScriptError(Exception):
    """A script refused with a code other than not_found/conflict."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


class Change(NamedTuple):
    """The reply of a script that changes a trip or a driver: `ok` (changed,
    or nothing to change), `exists` (an idempotent create replayed), with the
    document when the script returns it and the events it published."""

    kind: str
    doc: dict | None
    events: tuple[str, ...]


def sentence(text: str) -> str:
    """A script's refusal as the API words every detail: a capital and a stop."""
    text = text.strip()
    if not text:
        return text
    return text[0].upper() + text[1:] + ("" if text[-1] in ".!?" else ".")


def change(reply) -> Change:
    """`{'ok', doc_json, 'type,type'}`, `{'exists', doc_json, ''}` or
    `{'err', code, detail}` (trips.lua): counts the published events, maps
    not_found to 404 and conflict to 409, any other refusal to ScriptError."""
    kind, second, third = reply[0], reply[1], reply[2]
    if kind == "err":
        if second == "not_found":
            raise errors.NotFound(sentence(third))
        if second == "conflict":
            raise errors.Conflict(sentence(third))
        raise ScriptError(second, third)
    events = tuple(third.split(",")) if third else ()
    for type_ in events:
        metrics.EVENTS_PUBLISHED.labels(type_).inc()
    return Change(kind, orjson.loads(second) if second else None, events)


class NoKeys(NamedTuple):
    pass


class NoArgs(NamedTuple):
    pass
