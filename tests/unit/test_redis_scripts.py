"""The Lua sources: each script gets the helpers of lib.lua it uses, and only them."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("redis")

from postroom.backends.redis._scripts import SCRIPT_NAMES
from postroom.backends.redis._sources import needed as _needed
from postroom.backends.redis._sources import source as _source

LIB = """-- header
local TAG = KEYS[1]
local K_A = TAG .. ':a'

-- a counter some helpers share
local counted = 0
local function count()
  counted = counted + 1
end

local function uses_count(x)
  count()
  return x
end

-- never called by the body
local function unused()
  return K_A
end

local function sets_counted()
  counted = 5
end"""


def _functions(src: str) -> list[str]:
    return re.findall(r"^local function (\w+)", src, re.MULTILINE)


def test_a_script_keeps_the_helpers_it_calls_and_what_they_call() -> None:
    assert _functions(_needed(LIB, "return uses_count(1)")) == ["count", "uses_count"]
    assert "local K_A" in _needed(LIB, "return 1")
    assert _functions(_needed(LIB, "return 1")) == []


def test_a_helper_mentioned_in_a_comment_only_is_left_out() -> None:
    assert _functions(_needed(LIB, "-- unused() is not called\nreturn 1")) == []


def test_a_variable_of_a_helper_paragraph_is_kept_when_named() -> None:
    kept = _needed(LIB, "sets_counted()\nreturn counted")
    assert "local counted = 0" in kept
    assert _functions(kept) == ["count", "sets_counted"]


@pytest.mark.parametrize("name", SCRIPT_NAMES)
def test_every_function_a_script_calls_is_defined_before(name: str) -> None:
    src = _source(name)
    defined = _functions(src)
    for called in set(re.findall(r"(?<![\w.:])(\w+)\(", re.sub(r"--.*", "", src))):
        if called in {
            "function",
            "tonumber",
            "tostring",
            "ipairs",
            "pairs",
            "unpack",
            "type",
            "error",
            "pcall",
            "select",
            "assert",
        }:
            continue
        assert called in defined, f"{name}.lua calls {called}() undefined"
