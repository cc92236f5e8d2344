"""How messages and dead letters are laid out in JetStream messages.

The body is the message data as is; everything else rides in one header,
``Postroom-Meta``, as compact ASCII JSON. A stored copy never changes (JetStream
messages are immutable), so a retry, a release or a redrive stores a new copy
with new meta and removes the old one.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from nats.js.api import RawStreamMsg

from ...model.message import (
    DeadLetter,
    HistoryEntry,
    Message,
    from_ms,
    to_ms_dt,
)
from .._common import lease_expired_entry

__all__ = [
    "DEAD",
    "META",
    "Meta",
    "dead_letter_from",
    "dead_letter_headers",
    "message_headers",
    "meta_of",
    "raw_message",
]

META = "Postroom-Meta"
DEAD = "Postroom-Dead"
MSG_ID = "Nats-Msg-Id"

_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True).encode
_DECODE = json.JSONDecoder().decode


@dataclass(slots=True)
class Meta:
    """What a stored copy says besides its body.

    ``base`` is the attempts the message had when this copy was stored: a
    delivery of the copy has ``attempts = base + num_delivered``.
    """

    id: str
    headers: dict[str, str]
    enqueued_ms: int
    available_ms: int
    base: int = 0
    dedup_key: str | None = None
    redrives: int = 0
    history: list[HistoryEntry] = field(default_factory=list)
    group: str | None = None
    priority: int = 0

    def message(
        self,
        queue: str,
        body: bytes,
        attempts: int,
        times: dict[int, datetime] | None = None,
    ) -> Message:
        """The message this copy holds, with ``attempts`` deliveries so far
        (``times``: datetimes of milliseconds made already, shared by a batch)."""
        times = {} if times is None else times
        enqueued = times.get(self.enqueued_ms)
        if enqueued is None:
            enqueued = times[self.enqueued_ms] = from_ms(self.enqueued_ms)
        available = times.get(self.available_ms)
        if available is None:
            available = times[self.available_ms] = from_ms(self.available_ms)
        return Message(
            id=self.id,
            queue=queue,
            body=body,
            headers=dict(self.headers),
            enqueued_at=enqueued,
            available_at=available,
            attempts=attempts,
            dedup_key=self.dedup_key,
            redrives=self.redrives,
            group=self.group,
            priority=self.priority,
        )

    def with_expiries(self, count: int, now: int) -> Meta:
        """This meta with ``count`` lease expiries appended to the history.

        JetStream redelivers a message whose AckWait ran out without saying who
        held it, so these entries carry the time they were noticed and no consumer.
        """
        if count <= 0:
            return self
        extra = [lease_expired_entry(now, "") for _ in range(count)]
        return replace(self, history=[*self.history, *extra])

    def to_json(self) -> str:
        """The header value."""
        data: dict[str, Any] = {
            "i": self.id,
            "h": self.headers,
            "e": self.enqueued_ms,
            "a": self.available_ms,
            "n": self.base,
            "r": self.redrives,
        }
        if self.dedup_key is not None:
            data["k"] = self.dedup_key
        if self.history:
            data["y"] = [h.to_dict() for h in self.history]
        if self.group is not None:
            data["g"] = self.group
        if self.priority:
            data["p"] = self.priority
        return _ENCODE(data)

    @classmethod
    def from_json(cls, raw: str) -> Meta:
        """Inverse of :meth:`to_json` (read for every delivery: positional
        arguments, the JSON's own objects kept)."""
        data = _DECODE(raw)
        history, headers = data.get("y"), data.get("h") or {}
        if not isinstance(headers, dict):
            raise TypeError("the meta's headers are no object")
        return cls(
            str(data["i"]),
            headers,
            int(data["e"]),
            int(data["a"]),
            int(data.get("n") or 0),
            data.get("k"),
            int(data.get("r") or 0),
            [HistoryEntry.from_dict(h) for h in history] if history else [],
            data.get("g"),
            int(data.get("p") or 0),
        )

    @classmethod
    def of(cls, m: Message) -> Meta:
        """The meta of a new message."""
        return cls(
            id=m.id,
            headers=dict(m.headers),
            enqueued_ms=to_ms_dt(m.enqueued_at),
            available_ms=to_ms_dt(m.available_at),
            base=m.attempts,
            dedup_key=m.dedup_key,
            redrives=m.redrives,
            group=m.group,
            priority=m.priority,
        )


def meta_of(headers: dict[str, str] | None) -> Meta | None:
    """The meta of a stored copy, ``None`` when it has none (not postroom's)."""
    raw = (headers or {}).get(META)
    if not raw:
        return None
    try:
        return Meta.from_json(raw)
    except (ValueError, KeyError, TypeError):
        return None


def message_headers(meta: Meta, msg_id: str) -> dict[str, str]:
    """Headers of a stored copy; ``msg_id`` makes its publish idempotent."""
    return {META: meta.to_json(), MSG_ID: msg_id}


def dead_letter_headers(
    meta: Meta, *, queue: str, reason: str, attempts: int, dead_ms: int
) -> dict[str, str]:
    """Headers of a dead letter: the message's meta (with its whole history),
    and the source queue, reason, attempts and time of death."""
    dead = _ENCODE({"q": queue, "w": reason, "t": attempts, "d": dead_ms})
    return {META: meta.to_json(), DEAD: dead}


def dead_letter_from(headers: dict[str, str] | None, body: bytes) -> DeadLetter | None:
    """Build a dead letter from a stored one (``None`` when it is not postroom's)."""
    meta = meta_of(headers)
    raw = (headers or {}).get(DEAD)
    if meta is None or not raw:
        return None
    dead = json.loads(raw)
    queue = str(dead["q"])
    attempts = int(dead["t"])
    return DeadLetter(
        message=meta.message(queue, body, attempts),
        queue=queue,
        reason=str(dead["w"]),
        error=meta.history[-1].error if meta.history else None,
        history=list(meta.history),
        attempts=attempts,
        dead_at=from_ms(int(dead["d"])),
    )


def raw_message(stored: dict[str, Any]) -> RawStreamMsg:
    """A stored message from a ``STREAM.MSG.GET`` reply's ``message``: its
    headers read from their ``NATS/1.0`` block directly (nats-py hands them to
    the e-mail parser, a good part of a grouped message's cost)."""
    headers: dict[str, str] | None = None
    if hdrs := stored.get("hdrs"):
        headers = {}
        for line in base64.b64decode(hdrs).decode().split("\r\n")[1:]:
            key, sep, value = line.partition(":")
            if sep:
                headers[key.strip()] = value.strip()
        headers = headers or None
    data = base64.b64decode(stored["data"]) if stored.get("data") else None
    return RawStreamMsg(
        subject=stored.get("subject"),
        seq=stored.get("seq"),
        data=data,
        headers=headers,
    )
