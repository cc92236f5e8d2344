"""Response documents of the HTTP API (pydantic models)."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel
from starlette.responses import JSONResponse

from ..model.codec import CONTENT_TYPE, JSON_TYPE
from ..model.message import DeadLetter, Message, QueueStats, Subscription
from . import _json
from ._models import BackoffModel, ErrorModel, Headers


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: a string that is not valid
    Unicode (a lone surrogate stored through another path) still renders."""

    def render(self, content: Any) -> bytes:
        """The document as ASCII JSON."""
        return json.dumps(
            content, ensure_ascii=True, allow_nan=False, separators=(",", ":")
        ).encode("ascii")


class Problem(BaseModel):
    """An RFC 9457 problem document, returned with every 4xx and 5xx."""

    type: str
    title: str
    status: int
    detail: str


class Ok(BaseModel):
    """The operation succeeded."""

    ok: bool = True


class Health(BaseModel):
    """The server and its backend answer."""

    status: str
    backend: str


class SendResponse(BaseModel):
    """The id of the sent message (the first one's for a deduplicated send)."""

    id: str


class BatchSendResponse(BaseModel):
    """The ids of the sent messages, in order."""

    ids: list[str]


class MessageModel(BaseModel):
    """A stored message."""

    id: str
    queue: str
    body: Any = None
    body_base64: str | None = None
    headers: Headers
    attempts: int
    redrives: int
    enqueued_at: datetime
    available_at: datetime
    group: str | None = None
    priority: int = 0

    @classmethod
    def of(cls, m: Message, **more: Any) -> Self:
        """From a :class:`Message`; ``more`` sets the fields of a subclass."""
        return cls(
            id=m.id,
            queue=m.queue,
            headers=m.headers,
            attempts=m.attempts,
            redrives=m.redrives,
            group=m.group,
            priority=m.priority,
            enqueued_at=m.enqueued_at,
            available_at=m.available_at,
            **body_fields(m),
            **more,
        )


def body_fields(m: Message) -> dict[str, Any]:
    """``{"body": value}`` for a JSON message, else ``{"body_base64": ...}``."""
    if m.headers.get(CONTENT_TYPE, JSON_TYPE) == JSON_TYPE:
        try:
            return {"body": _json.loads(m.body)}
        except _json.InvalidJson:
            pass  # not strict JSON (e.g. stored before the server refused it)
    return {"body_base64": base64.b64encode(m.body).decode("ascii")}


class ReceivedMessage(MessageModel):
    """A leased message; send ``receipt`` back to ack, retry, reject or extend."""

    receipt: str
    lease_expires_at: datetime


class ReceiveResponse(BaseModel):
    """The leased messages (empty when none came within ``wait``)."""

    messages: list[ReceivedMessage]


class BatchAckResponse(BaseModel):
    """How many were deleted, and the ids whose lease was lost (not deleted)."""

    acked: int
    lost: list[str]


class ExtendResponse(BaseModel):
    """The new lease."""

    receipt: str
    lease_expires_at: datetime


class Counters(BaseModel):
    """Lifetime counters of a queue, across every process."""

    sent: int = 0
    acked: int = 0
    retried: int = 0
    dead_lettered: int = 0
    redriven: int = 0


class QueueStatsModel(BaseModel):
    """Depths of a queue; ``oldest_age`` in seconds."""

    queue: str
    ready: int
    delayed: int
    in_flight: int
    dead: int
    oldest_age: float | None
    counters: Counters

    @classmethod
    def of(cls, s: QueueStats, counters: dict[str, int]) -> QueueStatsModel:
        """From stats and counters."""
        return cls(**s.to_dict(), counters=Counters(**counters))


class QueueList(BaseModel):
    """Every queue the token may see."""

    queues: list[QueueStatsModel]


class PolicyModel(BaseModel):
    """A queue's stored policy."""

    max_attempts: int
    visibility_timeout: float
    backoff: BackoffModel
    dead_letter: str | None
    dedup_window: float
    rate_limit: float | None = None


class QueueDetail(QueueStatsModel):
    """A queue's depths, counters and policy."""

    policy: PolicyModel


class HistoryModel(BaseModel):
    """One attempt."""

    at: datetime
    consumer: str
    outcome: str
    error: ErrorModel | None


class DeadLetterModel(BaseModel):
    """A dead letter with its original message and history."""

    id: str
    queue: str
    reason: str
    error: ErrorModel | None
    attempts: int
    dead_at: datetime
    history: list[HistoryModel]
    message: MessageModel

    @classmethod
    def of(cls, d: DeadLetter) -> DeadLetterModel:
        """From a :class:`DeadLetter`."""
        return cls(
            id=d.id,
            queue=d.queue,
            reason=d.reason,
            error=ErrorModel(**d.error.to_dict()) if d.error else None,
            attempts=d.attempts,
            dead_at=d.dead_at,
            history=[
                HistoryModel(
                    at=h.at,
                    consumer=h.consumer,
                    outcome=h.outcome,
                    error=ErrorModel(**h.error.to_dict()) if h.error else None,
                )
                for h in d.history
            ],
            message=MessageModel.of(d.message),
        )


class DeadLetterList(BaseModel):
    """Dead letters, oldest death first."""

    dead_letters: list[DeadLetterModel]


class RedriveResponse(BaseModel):
    """The ids moved back (or that would move, with ``dry_run``)."""

    ids: list[str]
    count: int
    dry_run: bool


class PurgeResponse(BaseModel):
    """How many messages were deleted."""

    purged: int


class PublishResponse(BaseModel):
    """The event id (the same in every subscription)."""

    id: str


class SubscriptionModel(BaseModel):
    """A subscription; ``secret`` only in the answer to its creation."""

    topic: str
    name: str
    queue: str
    push_endpoint: str | None
    secret: str | None
    filter: Headers | None
    max_attempts: int
    created_at: datetime | None

    @classmethod
    def of(cls, s: Subscription, *, secret: bool) -> SubscriptionModel:
        """From a :class:`Subscription`, with or without its secret."""
        return cls(**s.to_dict(include_secret=secret))


class SubscriptionList(BaseModel):
    """Subscriptions, sorted by topic and name."""

    subscriptions: list[SubscriptionModel]


class TopicModel(BaseModel):
    """A topic and its counters."""

    topic: str
    subscriptions: int
    published: int
    unrouted: int


class TopicList(BaseModel):
    """Every topic the token may see."""

    topics: list[TopicModel]
