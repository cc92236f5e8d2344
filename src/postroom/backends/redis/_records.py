"""How messages, deliveries and dead letters are laid out in Redis values."""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable
from typing import Any, NamedTuple

from ...model.message import (
    DeadLetter,
    Delivery,
    HistoryEntry,
    Message,
    from_ms,
    to_ms_dt,
)

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


def _meta_encoder() -> Callable[[dict[str, Any]], str]:
    """:data:`_ENCODE` for payload metas, without the C encoder that
    ``JSONEncoder.encode`` makes anew on every call (about a third of a
    payload's cost), where the C module has one; checked against it once."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C module
        return _ENCODE
    try:
        # markers (no cycle check: a meta holds str headers), default, the
        # string encoder, indent, separators, sort_keys, skipkeys, allow_nan
        args = (None, _refuse, json.encoder.encode_basestring_ascii, None, ":", ",")
        one = make(*args, False, False, True)
        sample = {"h": {"é": "\n"}, "e": 1, "a": 2, "k": None, "r": 0, "p": 1.5}
        if "".join(one(sample, 0)) != _ENCODE(sample):
            return _ENCODE
    except TypeError:  # another signature
        return _ENCODE
    return lambda meta: "".join(one(meta, 0))


_ENCODE_META = _meta_encoder()


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
    head, _, body = payload.partition(b"\n")
    meta = _DECODE(head.decode())  # ASCII (json.loads would detect the encoding)
    enqueued, available = int(meta["e"]), int(meta["a"])
    enqueued_at = from_ms(enqueued)
    return Message(
        id=mid,
        queue=queue,
        body=body,
        headers=meta["h"] or {},
        enqueued_at=enqueued_at,
        available_at=enqueued_at if available == enqueued else from_ms(available),
        attempts=attempts,
        dedup_key=meta.get("k"),
        redrives=int(meta.get("r") or 0),
        group=meta.get("g"),
        priority=int(meta.get("p") or 0),
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
    """Build deliveries from a claim reply ``[id, payload, attempts, ...]``."""
    lease_end = from_ms(expires)
    out: list[Delivery] = []
    for i in range(0, len(flat), 3):
        payload = flat[i + 1]
        if payload is None:  # stored data vanished (purged meanwhile)
            continue
        mid = flat[i].decode()
        msg = decode_message(mid, queue, payload, int(flat[i + 2]))
        out.append(Delivery(msg, f"{mid}.{receipt_token}", lease_end, consumer))
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
