"""A traceback for the dashboard: the user's own frames shown, postroom's and
anyio's folded (they are the same in every traceback a worker records)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import anyio

__all__ = ["Part", "fold_traceback"]

# Frames whose file lies in these packages are folded.
_FOLDED = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,  # postroom
    os.path.dirname(os.path.abspath(anyio.__file__ or "")) + os.sep,
)
_NAMES = "postroom/anyio"


@dataclass(frozen=True, slots=True)
class Part:
    """Consecutive lines of a traceback: shown, or folded behind ``summary``."""

    text: str
    folded: bool = False
    summary: str = ""


def _frame_file(line: str) -> str | None:
    if not line.startswith('  File "'):
        return None
    return line[len('  File "') :].split('"', 1)[0]


def _library(path: str) -> bool:
    return os.path.abspath(path).startswith(_FOLDED)


def _frames(lines: list[str]) -> list[tuple[bool, list[str]]]:
    """Lines grouped as (is a library frame, lines): a frame is its ``File``
    line with the indented lines after it; anything else stands alone."""
    groups: list[tuple[bool, list[str]]] = []
    for line in lines:
        path = _frame_file(line)
        if path is not None:
            groups.append((_library(path), [line]))
        elif line.startswith("    ") and groups and _frame_file(groups[-1][1][0]):
            groups[-1][1].append(line)
        else:
            groups.append((False, [line]))
    return groups


def fold_traceback(text: str) -> list[Part]:
    """``text`` in parts: runs of postroom and anyio frames folded, with how many
    frames each fold holds; everything else as it is."""
    parts: list[Part] = []
    shown: list[str] = []
    folded: list[list[str]] = []

    def flush_folded() -> None:
        if folded:
            n = len(folded)
            summary = f"{n} {_NAMES} frame{'s' if n != 1 else ''}"
            body = "\n".join(line for frame in folded for line in frame)
            parts.append(Part(body, True, summary))
            folded.clear()

    for library, lines in _frames(text.rstrip("\n").split("\n")):
        if library:
            if shown:
                parts.append(Part("\n".join(shown)))
                shown = []
            folded.append(lines)
        else:
            flush_folded()
            shown.extend(lines)
    flush_folded()
    if shown:
        parts.append(Part("\n".join(shown)))
    return parts
