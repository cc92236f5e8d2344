"""How messages, deliveries and dead letters are laid out in Redis values."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NamedTuple

from ...model.codec import one_shot
from ...model.message import (
    DeadLetter,
    Delivery,
    HistoryEntry,
    Message,
    from_ms,
    to_ms_dt,
)
from ...model.slots import new_delivery, new_message

__all__ = [
    "Redriven",
    "as_text",
    "dead_letter_from",
    "decode_message",
    "deliveries_from",
    "encode_message",
    "order_args",
    "rewrite_for_redrive",
]


# A stored message's fields, in Message's order (id, queue, body, headers,
# enqueued_at, available_at, attempts, dedup_key, redrives, group, priority).
Fields = tuple[str, str, bytes, Any, datetime, datetime, int, Any, int, Any, int]


class Redriven(NamedTuple):
    """A dead letter's payload rewritten for a redrive to another queue."""

    payload: bytes
    enqueued_ms: int
    priority: int
    group: str | None


# One encoder for every payload (json.dumps with options builds one per call).
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
_DECODE = json.JSONDecoder().decode


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# Payload metas hold str headers, numbers and None: no cycle to look for.
_ENCODE_META = one_shot(
    json.JSONEncoder(separators=(",", ":"), default=_refuse),
    {"h": {"é": "\n"}, "e": 1, "a": 2, "k": None, "r": 0, "p": 1.5},
)


def encode_message(
    m: Message, enqueued_ms: int | None = None, available_ms: int | None = None
) -> bytes:
    """The stored payload: compact meta JSON, a newline, the raw body.

    JSON never contains a raw newline, so the first one ends the meta part. The
    queue is not stored (it is the key's), nor are attempts (kept apart); a group
    and a priority only when the message has them. ``enqueued_ms`` and
    ``available_ms``: the message's times in milliseconds, when the caller has
    them already.
    """
    meta: dict[str, Any] = {
        "h": m.headers,
        "e": to_ms_dt(m.enqueued_at) if enqueued_ms is None else enqueued_ms,
        "a": to_ms_dt(m.available_at) if available_ms is None else available_ms,
        "k": m.dedup_key,
        "r": m.redrives,
    }
    if m.group is not None:
        meta["g"] = m.group
    if m.priority:
        meta["p"] = m.priority
    return _ENCODE_META(meta).encode() + b"\n" + m.body


def decode_message(mid: str, queue: str, payload: bytes, attempts: int) -> Message:
    """Inverse of :func:`encode_message`."""
    return Message(*_message_fields(mid, queue, payload, attempts))


def _message_fields(mid: str, queue: str, payload: bytes, attempts: int) -> Fields:
    """The fields of a stored message, in :class:`Message`'s order."""
    head, _, body = payload.partition(b"\n")
    meta = _DECODE(head.decode())  # ASCII (json.loads would detect the encoding)
    enqueued, available = int(meta["e"]), int(meta["a"])
    enqueued_at = from_ms(enqueued)
    return (
        mid,
        queue,
        body,
        meta["h"] or {},
        enqueued_at,
        enqueued_at if available == enqueued else from_ms(available),
        attempts,
        meta.get("k"),
        int(meta.get("r") or 0),
        meta.get("g"),
        int(meta.get("p") or 0),
    )


def rewrite_for_redrive(payload: bytes, now: int) -> Redriven:
    """The payload of a redriven copy (``redrives + 1``, visible ``now``) with
    its enqueue time, priority and group."""
    head, _, body = payload.partition(b"\n")
    meta = json.loads(head)
    meta["r"] = int(meta.get("r") or 0) + 1
    meta["a"] = now
    return Redriven(
        _ENCODE(meta).encode() + b"\n" + body,
        int(meta["e"]),
        int(meta.get("p") or 0),
        meta.get("g"),
    )


def order_args(priority: int, group: str | None) -> tuple[int, str]:
    """A message's priority and group as the enqueue script takes them."""
    return priority, "-" if group is None else "g" + group


def deliveries_from(
    queue: str, flat: list[Any], receipt_token: str, expires: int, consumer: str
) -> list[Delivery]:
    """Build deliveries from a claim reply ``[id, payload, attempts, ...]``
    (through the slots: this is on the path of every wake-up)."""
    lease_end = from_ms(expires)
    out: list[Delivery] = []
    for i in range(0, len(flat), 3):
        payload = flat[i + 1]
        if payload is None:  # stored data vanished (purged meanwhile)
            continue
        mid = flat[i].decode()
        fields = _message_fields(mid, queue, payload, int(flat[i + 2]))
        message = new_message(*fields)
        receipt = f"{mid}.{receipt_token}"
        out.append(new_delivery(message, receipt, lease_end, consumer))
    return out


def dead_letter_from(
    mid: str,
    queue: str,
    *,
    payload: bytes,
    attempts: int,
    reason: bytes | None,
    history: bytes | None,
    dead_at: float,
) -> DeadLetter:
    """Build a dead letter from its stored parts."""
    entries = [HistoryEntry.from_dict(h) for h in json.loads(history or b"[]")]
    return DeadLetter(
        message=decode_message(mid, queue, payload, attempts),
        queue=queue,
        reason=(reason or b"failed").decode(),
        error=entries[-1].error if entries else None,
        history=entries,
        attempts=attempts,
        dead_at=from_ms(int(dead_at)),
    )


def as_text(value: object) -> str:
    """A Redis reply item (bytes) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)
