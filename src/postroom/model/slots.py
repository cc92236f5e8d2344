"""Messages and deliveries built through their slots, for the hot paths.

A send builds a Message, a claim a Message and a Delivery per message, on the
path of every send and wake-up. The frozen dataclasses' ``__init__`` (a checked
``object.__setattr__`` per field, keyword arguments) takes about half of it. Each
field is set through its slot instead, on an instance made without ``__init__``
(neither class has a ``__post_init__`` or a computed field); the names are
checked against the classes' fields at import, so a new field cannot be left
unset.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .message import Delivery, Message

__all__ = ["new_delivery", "new_message"]

_Setter = Callable[[object, Any], None]
_MESSAGE_FIELDS = [
    *("id", "queue", "body", "headers", "enqueued_at", "available_at"),
    *("attempts", "dedup_key", "redrives", "group", "priority"),
]
_DELIVERY_FIELDS = ["message", "receipt", "lease_expires_at", "consumer"]


def _setters(cls: type, names: list[str]) -> tuple[_Setter, ...]:
    if list(cls.__dataclass_fields__) != names:  # type: ignore[attr-defined]
        raise RuntimeError(f"_slots.py does not know every field of {cls}")
    return tuple(getattr(cls, name).__set__ for name in names)


_MESSAGE_SETTERS = _setters(Message, _MESSAGE_FIELDS)
_DELIVERY_SETTERS = _setters(Delivery, _DELIVERY_FIELDS)
_new = object.__new__


def new_message(
    mid: str,
    queue: str,
    body: bytes,
    headers: dict[str, str],
    enqueued_at: datetime,
    available_at: datetime,
    attempts: int,
    dedup_key: str | None,
    redrives: int,
    group: str | None,
    priority: int,
) -> Message:
    """``Message(mid, ..., priority)`` (the fields, in order), built in half
    the time."""
    (s_id, s_queue, s_body, s_headers, s_enq, s_avail, s_att, s_dedup, s_red,
     s_group, s_prio) = _MESSAGE_SETTERS  # fmt: skip
    m = _new(Message)
    s_id(m, mid)
    s_queue(m, queue)
    s_body(m, body)
    s_headers(m, headers)
    s_enq(m, enqueued_at)
    s_avail(m, available_at)
    s_att(m, attempts)
    s_dedup(m, dedup_key)
    s_red(m, redrives)
    s_group(m, group)
    s_prio(m, priority)
    return m


def new_delivery(
    message: Message, receipt: str, expires: datetime, consumer: str
) -> Delivery:
    """``Delivery(message, receipt, expires, consumer)``, built in half the
    time."""
    s_msg, s_receipt, s_expires, s_consumer = _DELIVERY_SETTERS
    d = _new(Delivery)
    s_msg(d, message)
    s_receipt(d, receipt)
    s_expires(d, expires)
    s_consumer(d, consumer)
    return d
