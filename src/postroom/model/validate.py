"""Argument checks of every public entry point: pure, the same on every backend.

Each check raises :class:`~postroom.InvalidArgument` naming the argument, what is
wrong with the value and what is accepted, before any backend is called, so a
refused call changes nothing. The limits (see ``docs/contract.md``, "Limits"):

====================================  ==============================================
names (queue, topic, subscription)    1-200 UTF-8 bytes; no whitespace, control or
                                      format characters; topic and subscription
                                      names without ``:``
body                                  at most 256 KiB encoded (``MAX_BODY_BYTES``);
                                      JSON nested at most 100 deep, no NaN/infinity,
                                      no lone surrogates (see ``codec.encode_body``)
headers                               a ``str -> str`` mapping, at most 100 entries
                                      and 64 KiB; names as queue names, values
                                      without NUL or lone surrogates
leases (``visibility_timeout``,       0.001 s to 12 hours
``extend``)
delays, backoff, ``dedup_window``     0 to 14 days
``wait``                              0 to 300 s
``max_attempts``                      1 to 1,000
``max_messages``, ``concurrency``     1 to 10,000
limits (peek, dead letters, redrive)  1 to 1,000,000 (``None`` where it means all)
``rate``                              above 0, at most 1,000,000 per second
``rate_limit``                        0.001 to 1,000,000 deliveries per second
``group``                             as names (1-200 UTF-8 bytes, ...)
``priority``                          a whole number from 0 to 9 (9 first)
backoff ``factor``                    1 to 100
====================================  ==============================================
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from .errors import InvalidArgument

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_BATCH",
    "MAX_BODY_BYTES",
    "MAX_BODY_DEPTH",
    "MAX_DELAY_SECONDS",
    "MAX_FACTOR",
    "MAX_HEADERS",
    "MAX_HEADER_BYTES",
    "MAX_LEASE_SECONDS",
    "MAX_LIMIT",
    "MAX_NAME_BYTES",
    "MAX_PRIORITY",
    "MAX_RATE",
    "MAX_TEXT_CHARS",
    "MAX_WAIT_SECONDS",
    "MIN_LEASE_SECONDS",
    "MIN_RATE_LIMIT",
    "attempts",
    "count",
    "delay",
    "factor",
    "flag",
    "headers",
    "ids",
    "lease",
    "limit",
    "name",
    "optional_lease",
    "optional_name",
    "priority",
    "rate",
    "rate_limit",
    "seconds",
    "storable",
    "subscription_part",
    "text",
    "wait",
]

MAX_NAME_BYTES = 200
MAX_BODY_BYTES = 256 * 1024
MAX_BODY_DEPTH = 100
MAX_HEADERS = 100
MAX_HEADER_BYTES = 64 * 1024
MIN_LEASE_SECONDS = 0.001
MAX_LEASE_SECONDS = 12 * 3600.0
MAX_DELAY_SECONDS = 14 * 86400.0
MAX_WAIT_SECONDS = 300.0
MAX_ATTEMPTS = 1000
MAX_BATCH = 10_000
MAX_LIMIT = 1_000_000
MAX_RATE = 1_000_000.0
MAX_TEXT_CHARS = 1024
MAX_FACTOR = 100.0
MAX_PRIORITY = 9
MIN_RATE_LIMIT = 0.001

# Unicode categories refused in names: control, format (bidi overrides, zero
# width), surrogate and private use characters.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co"})


def _show(value: Any) -> str:
    """A short repr of a refused value (a huge one is cut)."""
    shown = repr(value)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def _type_name(value: Any) -> str:
    return type(value).__name__


def _name_problem(value: str) -> str | None:
    """What is wrong with a name, or ``None``."""
    if not value:
        return "is empty"
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode)"
    if size > MAX_NAME_BYTES:
        return f"is {size} bytes long"
    for c in value:
        if c.isspace():
            return f"contains the whitespace character {c!r}"
        if unicodedata.category(c) in _BAD_CATEGORIES:
            return f"contains the control or format character {c!r}"
    return None


def name(value: Any, arg: str = "queue") -> str:
    """A queue, topic or subscription name; return it."""
    if not isinstance(value, str):
        raise InvalidArgument(
            f"{arg} must be a name string, got a {_type_name(value)}: "
            "use e.g. 'images.resize'"
        )
    problem = _name_problem(value)
    if problem is not None:
        raise InvalidArgument(
            f"{arg} {_show(value)} {problem}: use 1-{MAX_NAME_BYTES} bytes of UTF-8 "
            "without whitespace, control or format characters, e.g. 'images.resize'"
        )
    return value


def optional_name(value: Any, arg: str = "queue") -> str | None:
    """``None`` or a name."""
    return None if value is None else name(value, arg)


def subscription_part(value: Any, arg: str) -> str:
    """A topic or subscription name of a new subscription: a name without ``:``.

    The subscription's queue is ``topic:name``; a ``:`` in either part would let
    two subscriptions share one queue.
    """
    name(value, arg)
    if ":" in value:
        raise InvalidArgument(
            f"{arg} {_show(value)} contains ':': a subscription's queue is named "
            "'TOPIC:NAME', so ':' is not allowed in topic and subscription names "
            "(use '.', '-' or '_')"
        )
    return str(value)


def _number(value: Any, arg: str, unit: str) -> float:
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgument(
            f"{arg} must be a number of {unit} or a timedelta, got a "
            f"{_type_name(value)} ({_show(value)})"
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    return number


def seconds(value: Any, arg: str, low: float, high: float, what: str) -> float:
    """A finite number of seconds (or a timedelta) from ``low`` to ``high``
    (``what`` says ``high`` in words)."""
    number = _number(value, arg, "seconds")
    if not (math.isfinite(number) and low <= number <= high):
        raise InvalidArgument(
            f"{arg} must be between {low:g} and {high:g} seconds ({what}), "
            f"got {_show(value)}"
        )
    return number


def lease(value: Any, arg: str = "visibility_timeout") -> float:
    """A lease length in seconds: 0.001 s to 12 hours."""
    return seconds(value, arg, MIN_LEASE_SECONDS, MAX_LEASE_SECONDS, "12 hours")


def optional_lease(value: Any, arg: str = "visibility_timeout") -> float | None:
    """``None`` (the queue's default) or a lease."""
    return None if value is None else lease(value, arg)


def delay(value: Any, arg: str = "delay") -> float | None:
    """``None`` or a delay in seconds: 0 to 14 days."""
    if value is None:
        return None
    return seconds(value, arg, 0.0, MAX_DELAY_SECONDS, "14 days")


def wait(value: Any, arg: str = "wait") -> float:
    """A long-poll time in seconds: 0 to 300."""
    return seconds(value, arg, 0.0, MAX_WAIT_SECONDS, "5 minutes")


def count(value: Any, arg: str, low: int, high: int) -> int:
    """A whole number between ``low`` and ``high``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgument(
            f"{arg} must be a whole number from {low:,} to {high:,}, got a "
            f"{_type_name(value)} ({_show(value)})"
        )
    if not low <= value <= high:
        raise InvalidArgument(
            f"{arg} must be from {low:,} to {high:,}, got {_show(value)}"
        )
    return value


def attempts(value: Any, arg: str = "max_attempts") -> int:
    """``max_attempts``: 1 to 1,000."""
    return count(value, arg, 1, MAX_ATTEMPTS)


def limit(value: Any, arg: str = "limit", *, optional: bool = False) -> int | None:
    """A limit of messages: 1 to 1,000,000 (or ``None`` when ``optional``)."""
    if value is None and optional:
        return None
    return count(value, arg, 1, MAX_LIMIT)


def rate(value: Any, arg: str = "rate") -> float | None:
    """``None`` or messages per second: above 0, at most 1,000,000."""
    if value is None:
        return None
    number = _number(value, arg, "messages per second")
    if not (math.isfinite(number) and 0 < number <= MAX_RATE):
        raise InvalidArgument(
            f"{arg} must be above 0 and at most {MAX_RATE:,.0f} messages per "
            f"second, got {_show(value)}"
        )
    return number


def rate_limit(value: Any, arg: str = "rate_limit") -> float | None:
    """``None`` (no limit) or deliveries per second: 0.001 to 1,000,000."""
    if value is None:
        return None
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (number and MIN_RATE_LIMIT <= value <= MAX_RATE):
        raise InvalidArgument(
            f"{arg} must be from {MIN_RATE_LIMIT} to {MAX_RATE:,.0f} deliveries per "
            f"second, got a {_type_name(value)} ({_show(value)})"
        )
    return float(value)


def priority(value: Any, arg: str = "priority") -> int:
    """A message priority: a whole number from 0 to 9 (9 is delivered first)."""
    return count(value, arg, 0, MAX_PRIORITY)


def factor(value: Any, arg: str = "factor") -> float:
    """A backoff factor: 1 to 100."""
    number = _number(value, arg, "times")
    if not (math.isfinite(number) and 1.0 <= number <= MAX_FACTOR):
        raise InvalidArgument(
            f"{arg} must be from 1 to {MAX_FACTOR:g}, got {_show(value)}"
        )
    return number


def flag(value: Any, arg: str) -> bool:
    """A ``bool``."""
    if not isinstance(value, bool):
        raise InvalidArgument(f"{arg} must be True or False, got a {_type_name(value)}")
    return value


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode)"
    return None


def text(
    value: Any,
    arg: str,
    *,
    max_chars: int = MAX_TEXT_CHARS,
    optional: bool = True,
    empty: bool = False,
) -> str | None:
    """A free text argument (a dedup key, an id, a filter): a ``str`` without NUL
    or lone surrogates, at most ``max_chars`` long."""
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(f"{arg} must be a string, got a {_type_name(value)}")
    problem = _text_problem(value)
    if problem is None and not value and not empty:
        problem = "is empty"
    if problem is None and len(value) > max_chars:
        problem = f"is {len(value):,} characters long"
    if problem is not None:
        raise InvalidArgument(
            f"{arg} {_show(value)} {problem}: use 1 to {max_chars:,} characters "
            "without NUL"
        )
    return str(value)


def storable(text: str) -> str:
    """``text`` as every backend stores it: NUL (PostgreSQL refuses it) and lone
    surrogates (not UTF-8) become U+FFFD. For texts postroom records, such as
    errors, rather than refuses."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text


def headers(value: Any, arg: str = "headers") -> Mapping[str, str] | None:
    """``None`` or a ``str -> str`` mapping of at most 100 entries and 64 KiB.

    Values are never converted: ``None`` or ``bytes`` is refused, not stored as
    ``"None"`` or ``"b'...'"``.
    """
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidArgument(
            f"{arg} must be a mapping of str to str, got a {_type_name(value)}: "
            "e.g. {'tenant': 'acme'}"
        )
    if len(value) > MAX_HEADERS:
        raise InvalidArgument(
            f"{arg} has {len(value)} entries: at most {MAX_HEADERS} are allowed"
        )
    size = 0
    for key, val in value.items():
        name(key, f"{arg} name")
        if not isinstance(val, str):
            raise InvalidArgument(
                f"{arg}[{key!r}] must be a str, got a {_type_name(val)} "
                f"({_show(val)}): convert it yourself, e.g. str(n) or b.decode()"
            )
        text(val, f"{arg}[{key!r}]", max_chars=MAX_HEADER_BYTES, empty=True)
        size += len(key.encode()) + len(val.encode())
    if size > MAX_HEADER_BYTES:
        raise InvalidArgument(
            f"{arg} take {size:,} bytes: at most {MAX_HEADER_BYTES:,} bytes of "
            "names and values are allowed; put large data in the body"
        )
    return value


def ids(value: Any, arg: str = "ids") -> list[str] | None:
    """``None``, one message id or a sequence of message ids."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if isinstance(value, (bytes, Mapping)) or not isinstance(value, Iterable):
        raise InvalidArgument(
            f"{arg} must be message id strings, got a {_type_name(value)}: e.g. "
            "[dl.id for dl in client.dead_letters(queue)]"
        )
    out = list(value)
    for item in out:
        if not isinstance(item, str):
            raise InvalidArgument(
                f"{arg} must be message id strings, got a {_type_name(item)} "
                "among them: e.g. [dl.id for dl in client.dead_letters(queue)]"
            )
        text(item, f"{arg} item", max_chars=MAX_NAME_BYTES)
    return out
