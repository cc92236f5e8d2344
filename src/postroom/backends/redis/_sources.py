"""The Lua source of each script: ``lib.lua``'s helpers that it needs, then its own."""

from __future__ import annotations

import re
from importlib import resources

__all__ = ["needed", "source"]

_FUNCTION = re.compile(r"^local function (\w+)", re.MULTILINE)
_VARIABLE = re.compile(r"^local (\w+) =", re.MULTILINE)
_COMMENT = re.compile(r"--.*$", re.MULTILINE)
_CALLED = re.compile(r"(\w+)\(")
_WORD = re.compile(r"\w+")


def needed(lib: str, body: str) -> str:
    """The paragraphs of ``lib`` that ``body`` needs: every paragraph that
    defines no function, and those whose functions are called (or variables
    named) in ``body`` or in another paragraph kept. Redis runs the whole
    script on every call, and making a closure costs about as much as a
    command: a script that makes only its own runs faster."""
    paragraphs = lib.split("\n\n")
    code = [_COMMENT.sub("", p) for p in paragraphs]
    functions = [set(_FUNCTION.findall(c)) for c in code]
    variables = [set(_VARIABLE.findall(c)) for c in code]
    keep = [not f for f in functions]
    called: set[str] = set()
    words: set[str] = set()
    todo = [_COMMENT.sub("", body), *(c for c, k in zip(code, keep, strict=True) if k)]
    while todo:
        for text in todo:
            called.update(_CALLED.findall(text))
            words.update(_WORD.findall(text))
        todo = []
        for i, k in enumerate(keep):
            if not k and (functions[i] & called or variables[i] & words):
                keep[i] = True
                todo.append(code[i])
    return "\n\n".join(p for p, k in zip(paragraphs, keep, strict=True) if k)


def source(name: str) -> str:
    """The Lua source of script ``name``: the helpers it needs, then its body."""
    pkg = resources.files(__package__ or "postroom.backends.redis")
    lib = pkg.joinpath("lib.lua").read_text(encoding="utf-8")
    body = pkg.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return f"{needed(lib, body)}\n{body}"
