"""Conversions between stored rows and postroom's value objects."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from ...model.message import DeadLetter, Message, from_ms
from .. import _common
from .._common import lease_lost

__all__ = [
    "dead_from_row",
    "dumps",
    "lease_lost",
    "message_from_row",
    "message_row",
    "to_ms",
]

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

# Messages of one batch share headers and times: convert each distinct value once.
# The caches are bounded (cleared when full); the values are immutable or copied.
_CACHE_SIZE = 512

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _Memo(dict[K, V]):
    """``make(key)`` of each key seen, kept until the memo is full (then cleared)."""

    def __init__(self, make: Callable[[K], V]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, key: K) -> V:
        if len(self) >= _CACHE_SIZE:
            self.clear()
        value = self[key] = self.make(key)
        return value


_headers_json: _Memo[tuple[tuple[str, str], ...], str] = _Memo(
    lambda items: dumps(dict(items))
)
_headers_dict: _Memo[str, dict[str, str]] = _Memo(json.loads)
_from_ms: Callable[[int], datetime] = _Memo(from_ms).__getitem__


def _headers_to_json(headers: dict[str, str]) -> str:
    return _headers_json[tuple(headers.items())]


def _headers_from_json(text: str) -> dict[str, str]:
    return dict(_headers_dict[text])


def dumps(value: Any) -> str:
    """Compact JSON."""
    return _ENCODER.encode(value)


def to_ms(dt: datetime) -> int:
    """An aware datetime as milliseconds since the epoch (rounded, not truncated)."""
    return round(dt.timestamp() * 1000)


def message_row(queue: str, m: Message) -> tuple[Any, ...]:
    """The ``insert_message`` parameters of one message (visible from available_at)."""
    available = to_ms(m.available_at)
    return (
        queue,
        m.id,
        m.body,
        _headers_to_json(m.headers),
        to_ms(m.enqueued_at),
        available,
        available,
        m.attempts,
        m.dedup_key,
        m.redrives,
        m.group,
        m.priority,
    )


def message_from_row(row: Sequence[Any]) -> Message:
    """A Message from a ``messages`` or ``dead`` row (see
    ``_common.message_from_row``), whose last columns are group_key and priority."""
    headers = _headers_from_json(row[4])
    return _common.message_from_row(row, headers, _from_ms, row[-2], row[-1])


def dead_from_row(row: Sequence[Any]) -> DeadLetter:
    """A DeadLetter from a ``dead_letters`` row (see ``_common.dead_from_row``)."""
    message = message_from_row(row)
    return _common.dead_from_row(
        row, message, json.loads(row[11]) if row[11] else None, json.loads(row[12])
    )
