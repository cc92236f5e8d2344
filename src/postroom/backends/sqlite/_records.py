"""Conversions between stored rows and postroom's value objects."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ...model.errors import LeaseLost
from ...model.message import DeadLetter, ErrorInfo, HistoryEntry, Message, from_ms

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
_headers_json: dict[tuple[tuple[str, str], ...], str] = {}
_headers_dict: dict[str, dict[str, str]] = {}
_datetimes: dict[int, datetime] = {}


def _headers_to_json(headers: dict[str, str]) -> str:
    key = tuple(headers.items())
    text = _headers_json.get(key)
    if text is None:
        if len(_headers_json) >= _CACHE_SIZE:
            _headers_json.clear()
        text = _headers_json[key] = dumps(headers)
    return text


def _headers_from_json(text: str) -> dict[str, str]:
    cached = _headers_dict.get(text)
    if cached is None:
        if len(_headers_dict) >= _CACHE_SIZE:
            _headers_dict.clear()
        cached = _headers_dict[text] = json.loads(text)
    return dict(cached)


def _from_ms(ms: int) -> datetime:
    dt = _datetimes.get(ms)
    if dt is None:
        if len(_datetimes) >= _CACHE_SIZE:
            _datetimes.clear()
        dt = _datetimes[ms] = from_ms(ms)
    return dt


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
    )


def message_from_row(row: Sequence[Any]) -> Message:
    """A Message from ``seq, queue, id, body, headers, enqueued_at, available_at,
    attempts, dedup_key, redrives``."""
    return Message(
        id=row[2],
        queue=row[1],
        body=bytes(row[3]),
        headers=_headers_from_json(row[4]),
        enqueued_at=_from_ms(row[5]),
        available_at=_from_ms(row[6]),
        attempts=row[7],
        dedup_key=row[8] or None,
        redrives=row[9],
    )


def dead_from_row(row: Sequence[Any]) -> DeadLetter:
    """A DeadLetter from a ``dead_letters`` row (message columns, then reason,
    error, history, dead_at)."""
    message = message_from_row(row)
    return DeadLetter(
        message=message,
        queue=row[1],
        reason=row[10],
        error=ErrorInfo.from_dict(json.loads(row[11])) if row[11] else None,
        history=[HistoryEntry.from_dict(h) for h in json.loads(row[12])],
        attempts=message.attempts,
        dead_at=from_ms(row[13]),
    )


def lease_lost(message_id: str) -> LeaseLost:
    """The error for a receipt whose lease is gone (same text as every backend)."""
    return LeaseLost(
        f"lease of message {message_id} was lost (it expired and the message was "
        "delivered again, or it was already acked): raise the queue's "
        "visibility_timeout or call extend() during long work"
    )
