"""How messages, leases and dead letters are laid out in AMQP messages and in
the records of postroom's streams."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import aio_pika

from ...model.message import (
    DeadLetter,
    HistoryEntry,
    Message,
    from_ms,
    to_ms_dt,
)

__all__ = [
    "Unpacked",
    "dead_from_record",
    "dead_record",
    "message_dict",
    "message_from_dict",
    "pack_message",
    "unpack_message",
]

_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
META_HEADER = "x-postroom"


def pack_message(
    m: Message, *, attempts: int, history: list[HistoryEntry]
) -> aio_pika.Message:
    """The AMQP message of ``m``: the raw body, postroom's fields in one JSON
    header (``attempts`` counted so far, the history of those attempts)."""
    meta = {
        "h": m.headers,
        "e": to_ms_dt(m.enqueued_at),
        "a": to_ms_dt(m.available_at),
        "k": m.dedup_key,
        "r": m.redrives,
        "n": attempts,
        "y": [h.to_dict() for h in history],
    }
    return aio_pika.Message(
        m.body,
        message_id=m.id,
        headers={META_HEADER: _ENCODE(meta)},
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


@dataclass(frozen=True, slots=True)
class Unpacked:
    """A message as read from a queue: ``message.attempts`` is what was counted
    when it was published; ``returns`` counts the broker's redeliveries since
    (leases that ended without postroom's word: a closed channel)."""

    message: Message
    history: list[HistoryEntry]
    returns: int


def unpack_message(
    queue: str, message_id: str, headers: Mapping[str, Any], body: bytes
) -> Unpacked:
    """Inverse of :func:`pack_message`, with the broker's delivery count."""
    raw = headers.get(META_HEADER)
    meta: dict[str, Any] = json.loads(raw if isinstance(raw, (str, bytes)) else "{}")
    msg = Message(
        id=message_id,
        queue=queue,
        body=body,
        headers=meta.get("h") or {},
        enqueued_at=from_ms(int(meta.get("e", 0))),
        available_at=from_ms(int(meta.get("a", 0))),
        attempts=int(meta.get("n", 0)),
        dedup_key=meta.get("k"),
        redrives=int(meta.get("r") or 0),
    )
    history = [HistoryEntry.from_dict(h) for h in meta.get("y") or []]
    count = headers.get("x-delivery-count")
    returns = int(count) if isinstance(count, int) else 0
    return Unpacked(msg, history, returns)


def message_dict(m: Message, *, body: bool = True) -> dict[str, Any]:
    """A message as a stream record field (``body`` false leaves it out; group
    and priority only when it has them)."""
    out: dict[str, Any] = {
        "id": m.id,
        "b": base64.b64encode(m.body).decode() if body else "",
        "h": m.headers,
        "e": to_ms_dt(m.enqueued_at),
        "a": to_ms_dt(m.available_at),
        "n": m.attempts,
        "k": m.dedup_key,
        "r": m.redrives,
    }
    if m.group is not None:
        out["gr"] = m.group
    if m.priority:
        out["p"] = m.priority
    return out


def dead_record(dl: DeadLetter) -> dict[str, Any]:
    """The meta stream record of a new dead letter."""
    return {
        "t": "dead",
        "q": dl.queue,
        "m": message_dict(dl.message),
        "reason": dl.reason,
        "y": [h.to_dict() for h in dl.history],
        "at": to_ms_dt(dl.dead_at),
    }


def message_from_dict(m: dict[str, Any], queue: str) -> Message:
    """Inverse of :func:`message_dict`."""
    return Message(
        id=m["id"],
        queue=queue,
        body=base64.b64decode(m["b"]),
        headers=m["h"] or {},
        enqueued_at=from_ms(int(m["e"])),
        available_at=from_ms(int(m["a"])),
        attempts=int(m["n"]),
        dedup_key=m.get("k"),
        redrives=int(m.get("r") or 0),
        group=m.get("gr"),
        priority=int(m.get("p") or 0),
    )


def dead_from_record(rec: dict[str, Any]) -> DeadLetter:
    """Inverse of :func:`dead_record`."""
    msg = message_from_dict(rec["m"], rec["q"])
    history = [HistoryEntry.from_dict(h) for h in rec["y"]]
    return DeadLetter(
        message=msg,
        queue=rec["q"],
        reason=rec["reason"],
        error=history[-1].error if history else None,
        history=history,
        attempts=msg.attempts,
        dead_at=from_ms(int(rec["at"])),
    )


def redriven(dl: DeadLetter, to: str, now: int) -> Message:
    """The message a redrive puts on ``to``: same id, body and headers,
    ``attempts`` 0, ``redrives + 1``, visible now."""
    return replace(
        dl.message,
        queue=to,
        attempts=0,
        redrives=dl.message.redrives + 1,
        available_at=from_ms(now),
    )
