"""Strict JSON for the HTTP API: what is parsed is what any client can read back.

Python's ``json`` accepts more than JSON: ``NaN`` and ``Infinity``, numbers that
overflow to infinity (``1e400``), strings with lone UTF-16 surrogates
(``"\\ud800"``, which no UTF-8 encoder writes), and nesting until the
interpreter's recursion limit. Stored in a message, each of them breaks every
later receive, dead-letter listing or dashboard page that includes it, so the
server refuses them before anything is stored, and reads stored bodies back
with the same rules (a body that breaks them is returned as ``body_base64``).
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["MAX_DEPTH", "InvalidJson", "check_value", "loads"]

# Arrays and objects nested deeper than this are refused (the request document
# counts: a message body can nest a couple of levels less).
MAX_DEPTH = 100


class InvalidJson(ValueError):
    """A document that is not strict JSON; the message says what is wrong."""


def _no_constants(name: str) -> Any:
    raise InvalidJson(f"{name} is not a JSON number: send finite numbers only")


def _check_str(text: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidJson(
                "a string holds a lone UTF-16 surrogate (such as \\ud800), "
                "which is not valid Unicode: send well-formed UTF-8 text"
            ) from exc


def check_value(value: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`InvalidJson` unless ``value`` (parsed JSON) nests at most
    ``max_depth`` levels and holds only finite numbers and valid Unicode."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            _check_str(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InvalidJson(
                    "a number is too large for a double (it would become "
                    "Infinity): send finite numbers only"
                )
        elif isinstance(item, dict | list):
            if depth >= max_depth:
                raise InvalidJson(
                    f"the JSON document nests deeper than {max_depth} levels"
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    _check_str(key)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)


def loads(raw: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse strict JSON; raises :class:`InvalidJson` saying what is wrong."""
    try:
        value = json.loads(raw, parse_constant=_no_constants)
    except InvalidJson:
        raise
    except RecursionError as exc:
        raise InvalidJson(
            f"the JSON document nests deeper than {max_depth} levels"
        ) from exc
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, big ints
        raise InvalidJson(f"the request body is not valid JSON: {exc}") from exc
    check_value(value, max_depth)
    return value
