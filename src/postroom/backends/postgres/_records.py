"""Conversions between PostgreSQL rows and postroom's value objects."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ...model.message import DeadLetter, Message
from .. import _common
from .._common import lease_lost

__all__ = [
    "dead_from_row",
    "dumps",
    "lease_lost",
    "message_columns",
    "message_from_row",
    "order_columns",
    "ordered",
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


def ordered(messages: Sequence[Message]) -> bool:
    """Whether some of ``messages`` has a group or a priority."""
    return any(m.group is not None or m.priority for m in messages)


def order_columns(messages: Sequence[Message]) -> dict[str, list[Any]]:
    """The group and priority arrays that ``enqueue_ordered`` unnests."""
    return {
        "groups": [m.group for m in messages],
        "priorities": [m.priority for m in messages],
    }


def message_from_row(row: Sequence[Any], order_at: int = 10) -> Message:
    """A Message from a ``messages`` row (see ``_common.message_from_row``) whose
    group and priority are at ``order_at`` and the next column."""
    group, priority = row[order_at], row[order_at + 1]
    return _common.message_from_row(
        row, dict(row[4]), group=group, priority=priority or 0
    )


def dead_from_row(row: Sequence[Any]) -> DeadLetter:
    """A DeadLetter from a ``dead_letters`` row (see ``_common.dead_from_row``;
    group and priority last)."""
    message = message_from_row(row, order_at=14)
    return _common.dead_from_row(row, message, row[11], row[12])
