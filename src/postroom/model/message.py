"""The value objects of postroom: messages, deliveries, dead letters, stats."""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from .history import ErrorInfo, HistoryEntry
from .retry import Backoff
from .times import from_ms, now_ms, to_ms_dt

__all__ = [
    "DEFAULT_POLICY",
    "DeadLetter",
    "DeadReason",
    "Delivery",
    "ErrorInfo",
    "HistoryEntry",
    "Message",
    "QueuePolicy",
    "QueueStats",
    "Subscription",
    "body_to_json",
    "from_ms",
    "now_ms",
    "to_ms_dt",
]

DeadReason = Literal["failed", "lease_expired", "rejected", "undecodable", "timeout"]
DEAD_REASONS: tuple[str, ...] = (
    "failed",
    "lease_expired",
    "rejected",
    "undecodable",
    "timeout",
)


def body_to_json(body: bytes) -> dict[str, Any]:
    """A body for JSON documents: ``{"body": text}`` or ``{"body_base64": ...}``."""
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(body).decode("ascii")}


@dataclass(frozen=True, slots=True)
class Message:
    """A message on a queue.

    ``attempts`` counts deliveries so far: the first delivery has ``attempts == 1``.
    ``redrives`` counts how often the message came back from the dead letter queue.
    ``group`` is the FIFO group it was sent with (``None``: none) and ``priority``
    its priority, 0 to 9 (0 when sent without one); see ``docs/scheduling.md``.
    """

    id: str
    queue: str
    body: bytes
    headers: dict[str, str]
    enqueued_at: datetime
    available_at: datetime
    attempts: int = 0
    dedup_key: str | None = None
    redrives: int = 0
    group: str | None = None
    priority: int = 0

    def json(self) -> Any:
        """The body decoded as JSON."""
        return json.loads(self.body)

    @property
    def text(self) -> str:
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (body as UTF-8 text when possible, else base64)."""
        return {
            "id": self.id,
            "queue": self.queue,
            **body_to_json(self.body),
            "headers": dict(self.headers),
            "enqueued_at": self.enqueued_at.isoformat(),
            "available_at": self.available_at.isoformat(),
            "attempts": self.attempts,
            "dedup_key": self.dedup_key,
            "redrives": self.redrives,
            "group": self.group,
            "priority": self.priority,
        }


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message leased to one consumer, until ``lease_expires_at``."""

    message: Message
    receipt: str
    lease_expires_at: datetime
    consumer: str = ""

    @property
    def id(self) -> str:
        """The message id."""
        return self.message.id

    @property
    def queue(self) -> str:
        """The queue the message was received from."""
        return self.message.queue

    @property
    def body(self) -> bytes:
        """The message body."""
        return self.message.body

    @property
    def headers(self) -> dict[str, str]:
        """The message headers."""
        return self.message.headers

    @property
    def attempts(self) -> int:
        """Deliveries so far, this one included."""
        return self.message.attempts


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message that left its queue for the dead letter queue, with its history."""

    message: Message
    queue: str
    reason: str
    error: ErrorInfo | None
    history: list[HistoryEntry]
    attempts: int
    dead_at: datetime

    @property
    def id(self) -> str:
        """The original message id."""
        return self.message.id

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "id": self.message.id,
            "message": self.message.to_dict(),
            "queue": self.queue,
            "reason": self.reason,
            "error": self.error.to_dict() if self.error else None,
            "history": [{**h.to_dict(), "at": h.at.isoformat()} for h in self.history],
            "attempts": self.attempts,
            "dead_at": self.dead_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Depths of one queue; ``oldest_age`` in seconds (``None`` when empty)."""

    queue: str
    ready: int
    delayed: int
    in_flight: int
    dead: int
    oldest_age: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: the fields by name."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """A queue's delivery policy, stored in the backend.

    Durations are seconds. ``dead_letter`` names the dead letter queue (default
    ``"<queue>.dead"``). ``attributes`` are kept with the policy for other
    interfaces (the SQS endpoint stores its queue attributes there); postroom's
    delivery does not read them. ``rate_limit`` caps the deliveries per second
    across every consumer of the queue (``None``: no cap).
    """

    max_attempts: int = 5
    visibility_timeout: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)
    dead_letter: str | None = None
    dedup_window: float = 300.0
    attributes: dict[str, str] = field(default_factory=dict)
    rate_limit: float | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if self.visibility_timeout <= 0:
            raise ValueError("visibility_timeout must be > 0 seconds")
        if self.dedup_window < 0:
            raise ValueError("dedup_window must be >= 0 seconds")
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ValueError("rate_limit must be > 0 deliveries per second")

    @property
    def lease_ms(self) -> int:
        """The visibility timeout in milliseconds."""
        return round(self.visibility_timeout * 1000)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, as stored in backends (``attributes`` when not empty,
        ``rate_limit`` when set)."""
        data: dict[str, Any] = {
            "max_attempts": self.max_attempts,
            "visibility_timeout": self.visibility_timeout,
            "backoff": self.backoff.to_dict(),
            "dead_letter": self.dead_letter,
            "dedup_window": self.dedup_window,
        }
        if self.attributes:
            data["attributes"] = dict(self.attributes)
        if self.rate_limit is not None:
            data["rate_limit"] = self.rate_limit
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueuePolicy:
        """Inverse of :meth:`to_dict`."""
        return cls(
            max_attempts=int(data["max_attempts"]),
            visibility_timeout=float(data["visibility_timeout"]),
            backoff=Backoff.from_dict(data["backoff"]),
            dead_letter=data.get("dead_letter"),
            dedup_window=float(data.get("dedup_window", 300.0)),
            attributes={
                str(k): str(v) for k, v in (data.get("attributes") or {}).items()
            },
            rate_limit=float(data["rate_limit"]) if data.get("rate_limit") else None,
        )


DEFAULT_POLICY = QueuePolicy()


@dataclass(frozen=True, slots=True)
class Subscription:
    """A durable subscription of a topic: a queue that gets a copy of each event.

    ``filter`` matches headers exactly (every key must have the given value).
    ``push_endpoint`` makes it an HTTP push subscription signed with ``secret``.
    """

    topic: str
    name: str
    queue: str
    push_endpoint: str | None = None
    secret: str | None = None
    filter: dict[str, str] | None = None
    max_attempts: int = 5
    created_at: datetime | None = None

    def matches(self, headers: dict[str, str]) -> bool:
        """Whether an event with these headers is copied into this subscription."""
        if not self.filter:
            return True
        return all(headers.get(k) == v for k, v in self.filter.items())

    def to_dict(self, *, include_secret: bool = True) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "topic": self.topic,
            "name": self.name,
            "queue": self.queue,
            "push_endpoint": self.push_endpoint,
            "secret": self.secret if include_secret else None,
            "filter": dict(self.filter) if self.filter else None,
            "max_attempts": self.max_attempts,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Subscription:
        """Inverse of :meth:`to_dict`."""
        created = data.get("created_at")
        return cls(
            topic=str(data["topic"]),
            name=str(data["name"]),
            queue=str(data["queue"]),
            push_endpoint=data.get("push_endpoint"),
            secret=data.get("secret"),
            filter=dict(data["filter"]) if data.get("filter") else None,
            max_attempts=int(data.get("max_attempts", 5)),
            created_at=datetime.fromisoformat(created) if created else None,
        )
