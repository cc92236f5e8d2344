"""Field types of the request documents: what ``/openapi.json`` promises is what
the server accepts.

Names follow :func:`postroom.model.validate.name` (1-200 UTF-8 bytes, no
whitespace, control or format characters; topic and subscription names also
without ``:``): the schema carries the exact character class, computed from the
same Unicode database, while the server's name check enforces it (a 400).
Numbers are JSON numbers, never ``true``/``false`` or strings (``"delay":
false`` is refused); an integer may be written ``5.0``, as JSON Schema allows.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StrictBool

__all__ = [
    "B64_PATTERN",
    "NUMBER",
    "Bool",
    "HeaderValue",
    "Name",
    "Part",
    "Text",
    "header_names",
    "name_pattern",
]

# As model.validate refuses, less the surrogates (Cs): no UTF-8 text holds one
# (strict JSON refuses "\ud800"), and regex engines refuse them in patterns.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Co"})
B64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


def _class_char(c: str) -> str:
    return re.escape(c) if c in "\\]^-[" else c


@functools.cache
def name_pattern(also_refused: str = "") -> str:
    """A regular expression matching exactly the names the server accepts
    (up to their length), written with literal characters so that Python's
    ``re`` and ECMAScript read it alike."""
    ranges: list[list[int]] = []
    for cp in range(sys.maxunicode + 1):
        c = chr(cp)
        if (
            c.isspace()
            or c in also_refused
            or (unicodedata.category(c) in _BAD_CATEGORIES)
        ):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1][1] = cp
            else:
                ranges.append([cp, cp])
    parts = [
        _class_char(chr(a)) + (f"-{_class_char(chr(b))}" if b > a else "")
        for a, b in ranges
    ]
    return f"^[^{''.join(parts)}]+$"


def _name_schema(schema: dict[str, Any]) -> None:
    schema["pattern"] = name_pattern()


def _part_schema(schema: dict[str, Any]) -> None:
    schema["pattern"] = name_pattern(":")


def header_names(schema: dict[str, Any]) -> None:
    """Header names are names, as the server's check accepts them."""
    schema.pop("patternProperties", None)
    schema["propertyNames"] = {
        "minLength": 1,
        "maxLength": 200,
        "pattern": name_pattern(),
    }


def _number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a JSON number")
    return value


Name = Annotated[
    str, Field(min_length=1, max_length=200, json_schema_extra=_name_schema)
]
Part = Annotated[
    str, Field(min_length=1, max_length=200, json_schema_extra=_part_schema)
]
Text = Annotated[
    str, Field(min_length=1, max_length=200, json_schema_extra={"pattern": "^[^\0]+$"})
]
HeaderValue = Annotated[
    str, Field(max_length=65_536, json_schema_extra={"pattern": "^[^\0]*$"})
]
# Last in an ``Annotated[float, Field(ge=...), NUMBER]``, so that the bounds
# stay in the JSON schema.
NUMBER = BeforeValidator(_number)
Bool = StrictBool
