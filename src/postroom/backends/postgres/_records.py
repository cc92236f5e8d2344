"""Conversions between PostgreSQL rows and postroom's value objects."""

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
    "message_columns",
    "message_from_row",
    "to_ms",
]

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> str:
    """Compact JSON."""
    return _ENCODER.encode(value)


def to_ms(dt: datetime) -> int:
    """An aware datetime as milliseconds since the epoch (rounded, not truncated)."""
    return round(dt.timestamp() * 1000)


def message_columns(messages: Sequence[Message]) -> dict[str, list[Any]]:
    """The column arrays that ``enqueue`` and ``fan_out`` unnest, one per field."""
    headers: dict[tuple[tuple[str, str], ...], str] = {}
    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "queues",
            "ids",
            "bodies",
            "headers",
            "enqueued",
            "available",
            "attempts",
            "dedup",
            "redrives",
        )
    }
    for m in messages:
        key = tuple(m.headers.items())
        text = headers.get(key)
        if text is None:
            text = headers[key] = dumps(m.headers)
        cols["queues"].append(m.queue)
        cols["ids"].append(m.id)
        cols["bodies"].append(m.body)
        cols["headers"].append(text)
        cols["enqueued"].append(to_ms(m.enqueued_at))
        cols["available"].append(to_ms(m.available_at))
        cols["attempts"].append(m.attempts)
        cols["dedup"].append(m.dedup_key)
        cols["redrives"].append(m.redrives)
    return cols


def message_from_row(row: Sequence[Any]) -> Message:
    """A Message from ``seq, queue, id, body, headers, enqueued_at, available_at,
    attempts, dedup_key, redrives``."""
    return Message(
        id=row[2],
        queue=row[1],
        body=bytes(row[3]),
        headers=dict(row[4]),
        enqueued_at=from_ms(row[5]),
        available_at=from_ms(row[6]),
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
        error=ErrorInfo.from_dict(row[11]),
        history=[HistoryEntry.from_dict(h) for h in row[12]],
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
