"""Helpers shared by backends: receipts, lease tokens, stored message records."""

from __future__ import annotations

import json
import os
from typing import Any

from ..model.errors import ConfigurationError
from ..model.message import DeadLetter, ErrorInfo, HistoryEntry, Message, from_ms

__all__ = [
    "error_matches",
    "lease_expired_entry",
    "make_receipt",
    "message_from_record",
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


def error_matches(dl: DeadLetter, needle: str) -> bool:
    """Whether the dead letter's last error has ``needle`` in its message or type
    (case-insensitive): the ``error_contains`` filter of every backend."""
    err = dl.error
    if err is None:
        return False
    needle = needle.lower()
    return needle in err.message.lower() or needle in err.type.lower()
