"""The Python <-> Lua contract of every script: declared once, read by name
on both sides, and a disagreement fails when the library is built."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

import pytest
import redis as redis_sync

from common.script_contracts import ContractError, NoKeys, Script
from common.scripts import Scripts, all_libraries, load, lua_library
from driver_service.scripts import SCRIPTS as DRIVER_SCRIPTS
from gateway.scripts import SCRIPTS as GATEWAY_SCRIPTS
from trip_service.scripts import SCRIPTS as TRIP_SCRIPTS

ROOT = Path(__file__).resolve().parents[2]
LUA_FOLDERS = [ROOT / "driver_service" / "lua", ROOT / "trip_service" / "lua",
               ROOT / "gateway" / "lua"]


class PairKeys(NamedTuple):
    left: str
    right: str


class PairArgs(NamedTuple):
    first: str
    second: str


class SwappedArgs(NamedTuple):
    second: str
    first: str


def pair(reply) -> tuple:
    return tuple(reply)


BODY = "return {K.left, K.right, A.first, A.second}\n"


@pytest.fixture
def loaded(redis_server):
    """Test libraries loaded for one test, deleted after it."""
    names: list[str] = []
    yield names
    admin = redis_sync.Redis.from_url(redis_server)
    try:
        for name in names:
            admin.function_delete(name)
    finally:
        admin.close()


def _library(tmp_path: Path, name: str, body: str, *scripts: Script):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "pair.lua").write_text(body)
    return lua_library(f"test_{name}", name, folder, scripts, prelude=False)


def test_no_script_reads_keys_or_argv_by_position():
    raw = re.compile(r"\b(KEYS|ARGV)\s*\[")
    for folder in LUA_FOLDERS:
        for path in folder.glob("*.lua"):
            code = re.sub(r"--[^\n]*", "", path.read_text())
            assert not raw.search(code), path


def test_every_lua_file_has_one_declaration_and_every_declaration_a_file():
    declared = {s.name for s in (*DRIVER_SCRIPTS, *TRIP_SCRIPTS, *GATEWAY_SCRIPTS)}
    files = {p.stem for folder in LUA_FOLDERS for p in folder.glob("*.lua")}
    assert files <= declared
    assert declared - files == {"idem_touch"}  # the gateway's one inline body
    names = [lib.name for lib in all_libraries()]
    assert len(names) == len(set(names))


def test_a_name_the_lua_uses_but_the_declaration_lacks_fails_at_build(tmp_path):
    class OneArg(NamedTuple):
        first: str

    with pytest.raises(ContractError, match=r"arguments \['second'\]"):
        _library(tmp_path, "missing", BODY, Script("pair", PairKeys, OneArg, pair))


def test_a_declared_name_the_lua_never_uses_fails_at_build(tmp_path):
    class ThreeArgs(NamedTuple):
        first: str
        second: str
        third: str

    with pytest.raises(ContractError, match=r"arguments \['third'\]"):
        _library(tmp_path, "unused", BODY, Script("pair", PairKeys, ThreeArgs, pair))


def test_a_positional_read_or_an_undeclared_file_fails_at_build(tmp_path):
    with pytest.raises(ContractError, match="ARGV"):
        _library(tmp_path, "positional", "return {K.left, K.right, A.first, A.second, ARGV[1]}",
                 Script("pair", PairKeys, PairArgs, pair))
    with pytest.raises(ContractError, match="without a declaration"):
        _library(tmp_path, "undeclared", BODY, Script("other", PairKeys, PairArgs, pair))


def test_a_call_takes_its_own_declared_tuples_by_name():
    script = Script("pair", PairKeys, PairArgs, pair)
    with pytest.raises(TypeError):
        PairArgs(first="a")  # a missing argument
    with pytest.raises(TypeError):
        PairArgs(first="a", second="b", third="c")  # one too many
    with pytest.raises(TypeError, match="PairArgs"):
        script.check_args(SwappedArgs(first="a", second="b"))
    with pytest.raises(TypeError, match="PairKeys"):
        script.key_list(NoKeys())


async def test_reordering_a_declaration_changes_nothing_on_the_server(tmp_path, redis,
                                                                      redis_server, loaded):
    """The binding follows the declaration: the same call, its arguments
    declared in the other order, reaches the same Lua names."""
    as_declared = _library(tmp_path, "declared", BODY, Script("pair", PairKeys, PairArgs, pair))
    swapped_script = Script("pair", PairKeys, SwappedArgs, pair)
    swapped = _library(tmp_path, "swapped", BODY, swapped_script)
    load(redis_server, [as_declared, swapped])
    loaded += [as_declared.name, swapped.name]
    keys_ = PairKeys(left="{t}:l", right="{t}:r")
    one = await Scripts(redis, as_declared).call(
        Script("pair", PairKeys, PairArgs, pair), keys_, PairArgs(first="1", second="2"))
    two = await Scripts(redis, swapped).call(
        swapped_script, keys_, SwappedArgs(first="1", second="2"))
    assert one == two == ("{t}:l", "{t}:r", "1", "2")


async def test_an_absent_optional_key_goes_as_the_first_key(tmp_path, redis, redis_server,
                                                          loaded):
    """Same slot on a cluster; the script knows from its arguments it is absent."""

    class MaybeKeys(NamedTuple):
        left: str
        right: str | None

    script = Script("pair", MaybeKeys, PairArgs, pair)
    library = _library(tmp_path, "optional", BODY, script)
    load(redis_server, [library])
    loaded.append(library.name)
    reply = await Scripts(redis, library).call(
        script, MaybeKeys(left="{t}:l", right=None), PairArgs(first="1", second="2"))
    assert reply == ("{t}:l", "{t}:l", "1", "2")
