"""Conversions between stored rows and postroom's value objects."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from ...model.message import DeadLetter, Delivery, Message, from_ms
from ...model.slots import new_delivery, new_message
from .. import _common
from .._common import lease_lost, parse_receipt

__all__ = [
    "NOTHING",
    "AckPlan",
    "Leased",
    "ack_plan",
    "dead_from_row",
    "deliveries_from_rows",
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


def deliveries_from_rows(
    rows: Sequence[Sequence[Any]], token: str, expires: datetime, consumer: str
) -> list[Delivery]:
    """The deliveries of claimed ``messages`` rows (see :func:`message_from_row`),
    leased with ``token`` until ``expires``: equal to ``Delivery(message_from_row(
    row), make_receipt(id, token), expires, consumer)``, built in half the time."""
    receipt = _common.make_receipt
    return [
        new_delivery(
            new_message(
                r[2],
                r[1],
                bytes(r[3]),
                dict(_headers_dict[r[4]]),
                _from_ms(r[5]),
                _from_ms(r[6]),
                r[7],
                r[8] or None,
                r[9],
                r[10],
                r[11],
            ),
            receipt(r[2], token),
            expires,
            consumer,
        )
        for r in rows
    ]


def dead_from_row(row: Sequence[Any]) -> DeadLetter:
    """A DeadLetter from a ``dead_letters`` row (see ``_common.dead_from_row``)."""
    message = message_from_row(row)
    return _common.dead_from_row(
        row, message, json.loads(row[11]) if row[11] else None, json.loads(row[12])
    )


# An ack batch's parameters: (queue, id, token) per delivery, for redoing it one
# by one, and per queue the DELETE's JSON array of [id, token] and its length.
AckPlan = tuple[list[tuple[str, str, str]], list[tuple[str, str, int]]]


def ack_plan(deliveries: Sequence[Delivery]) -> AckPlan:
    """The parameters of an ack batch (made before its transaction)."""
    keys = [(d.queue, *parse_receipt(d.receipt)) for d in deliveries]
    by_queue: dict[str, list[tuple[str, str]]] = {}
    for queue, mid, token in keys:
        by_queue.setdefault(queue, []).append((mid, token))
    return keys, [(q, dumps(pairs), len(pairs)) for q, pairs in by_queue.items()]


class Leased(NamedTuple):
    """Rows claimed with one lease token, until their deliveries are built."""

    rows: list[Any]
    token: str
    until: int
    consumer: str

    def deliveries(self) -> list[Delivery]:
        """The deliveries: priority first, then send order."""
        if not self.rows:
            return []
        self.rows.sort(key=lambda r: (-r[-1], r[0]))
        return deliveries_from_rows(
            self.rows, self.token, from_ms(self.until), self.consumer
        )


NOTHING = Leased([], "", 0, "")
