"""Helpers shared by backends: receipts, lease tokens, stored message records."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from ..model.errors import ConfigurationError, LeaseLost
from ..model.message import DeadLetter, ErrorInfo, HistoryEntry, Message, from_ms

__all__ = [
    "dead_from_row",
    "lease_expired_entry",
    "lease_lost",
    "make_receipt",
    "message_from_record",
    "message_from_row",
    "new_token",
    "parse_receipt",
]


def new_token() -> str:
    """A random lease token."""
    return os.urandom(8).hex()


def make_receipt(message_id: str, token: str) -> str:
    """The opaque receipt of one lease."""
    return f"{message_id}.{token}"


def parse_receipt(receipt: str) -> tuple[str, str]:
    """Split a receipt into message id and lease token."""
    message_id, _, token = receipt.rpartition(".")
    if not message_id or not token:
        raise ConfigurationError(f"malformed receipt {receipt!r}")
    return message_id, token


def message_from_record(rec: dict[str, Any]) -> Message:
    """Build a Message from a flat stored record (times in ms, headers as JSON)."""
    headers = rec["headers"]
    if isinstance(headers, (str, bytes)):
        headers = json.loads(headers)
    return Message(
        id=rec["id"],
        queue=rec["queue"],
        body=rec["body"],
        headers=headers,
        enqueued_at=from_ms(int(rec["enqueued_at"])),
        available_at=from_ms(int(rec["available_at"])),
        attempts=int(rec["attempts"]),
        dedup_key=rec.get("dedup_key") or None,
        redrives=int(rec.get("redrives") or 0),
    )


def lease_expired_entry(now: int, consumer: str) -> HistoryEntry:
    """The history entry recorded when a consumer's lease ran out."""
    return HistoryEntry(
        at=from_ms(now),
        consumer=consumer,
        outcome="lease_expired",
        error=ErrorInfo(
            type="LeaseExpired",
            message=(
                f"the lease held by {consumer or 'a consumer'} expired: the worker "
                "crashed, was killed or hung past the visibility timeout"
            ),
        ),
    )


def lease_lost(message_id: str) -> LeaseLost:
    """The error for a receipt whose lease is gone (same text on every backend)."""
    return LeaseLost(
        f"lease of message {message_id} was lost (it expired and the message was "
        "delivered again, or it was already acked): raise the queue's "
        "visibility_timeout or call extend() during long work"
    )


def message_from_row(
    row: Sequence[Any],
    headers: dict[str, str],
    at: Callable[[int], datetime] = from_ms,
    group: str | None = None,
    priority: int = 0,
) -> Message:
    """A Message from the SQL backends' columns ``seq, queue, id, body, headers,
    enqueued_at, available_at, attempts, dedup_key, redrives`` (``headers``
    decoded by the caller, times turned into datetimes by ``at``), of ``group``
    with ``priority``."""
    return Message(
        id=row[2],
        queue=row[1],
        body=bytes(row[3]),
        headers=headers,
        enqueued_at=at(row[5]),
        available_at=at(row[6]),
        attempts=row[7],
        dedup_key=row[8] or None,
        redrives=row[9],
        group=group,
        priority=priority,
    )


def dead_from_row(
    row: Sequence[Any],
    message: Message,
    error: dict[str, Any] | None,
    history: list[dict[str, Any]],
) -> DeadLetter:
    """A DeadLetter from a ``dead_letters`` row of the SQL backends (the message
    columns, then reason, error, history, dead_at; error and history decoded by
    the caller)."""
    return DeadLetter(
        message=message,
        queue=row[1],
        reason=row[10],
        error=ErrorInfo.from_dict(error),
        history=[HistoryEntry.from_dict(h) for h in history],
        attempts=message.attempts,
        dead_at=from_ms(row[13]),
    )
