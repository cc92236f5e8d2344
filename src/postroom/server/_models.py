"""Request and response documents of the HTTP API (pydantic models).

Bodies travel as JSON values (``body``) or, for bytes, as base64 (``body_base64``).
Durations are seconds; times are ISO 8601 strings in UTC.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .._codec import CONTENT_TYPE, JSON_TYPE
from .._message import DeadLetter, Message, QueueStats, Subscription

MAX_WAIT = 20.0
MAX_LEASE = 12 * 3600.0
MAX_DELAY = 14 * 24 * 3600.0

_NAME = r"^\S+$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Body(_In):
    """A message body: a JSON value in ``body`` or bytes in ``body_base64``."""

    body: Any = None
    body_base64: str | None = None

    @model_validator(mode="after")
    def _one_body(self) -> Body:
        has_json = "body" in self.model_fields_set
        if has_json == (self.body_base64 is not None):
            raise ValueError("give exactly one of 'body' (JSON) or 'body_base64'")
        if self.body_base64 is not None:
            try:
                base64.b64decode(self.body_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError("body_base64 is not valid base64") from exc
        return self

    def payload(self) -> Any:
        """The body to hand to the client: bytes for base64, else the JSON value."""
        if self.body_base64 is not None:
            return base64.b64decode(self.body_base64)
        return self.body


Headers = dict[str, str]


class SendRequest(Body):
    """One message to send."""

    headers: Headers | None = None
    delay: float | None = Field(default=None, ge=0, le=MAX_DELAY)
    dedup_key: str | None = Field(default=None, min_length=1, max_length=200)


class BatchSendRequest(_In):
    """Several messages sent in one call, sharing ``headers`` and ``delay``."""

    messages: list[Body] = Field(min_length=1)
    headers: Headers | None = None
    delay: float | None = Field(default=None, ge=0, le=MAX_DELAY)


class ReceiveRequest(_In):
    """Lease up to ``max_messages``; ``wait`` long-polls up to 20 seconds."""

    max_messages: int = Field(default=1, ge=1, le=100)
    visibility_timeout: float | None = Field(default=None, gt=0, le=MAX_LEASE)
    wait: float = Field(default=0.0, ge=0, le=MAX_WAIT)


class ErrorModel(BaseModel):
    """An error: type, message and traceback."""

    type: str = Field(default="Error", max_length=200)
    message: str = Field(default="", max_length=10_000)
    traceback: str = Field(default="", max_length=100_000)


class ReceiptRequest(_In):
    """Identifies a delivery: the ``receipt`` from receive (and its message id)."""

    receipt: str = Field(min_length=1, max_length=4096)
    id: str | None = Field(default=None, max_length=200)


class BatchAckRequest(_In):
    """Several receipts to ack in one round trip."""

    receipts: list[str] = Field(min_length=1)


class RetryRequest(ReceiptRequest):
    """Give a message back after ``delay`` seconds (default: the backoff policy)."""

    delay: float | None = Field(default=None, ge=0, le=MAX_DELAY)
    error: str | ErrorModel | None = None


class RejectRequest(ReceiptRequest):
    """Move a message to the dead letter queue at once."""

    error: str | ErrorModel | None = None


class ExtendRequest(ReceiptRequest):
    """Lease the message for ``seconds`` more from now."""

    seconds: float = Field(gt=0, le=MAX_LEASE)


class BackoffModel(_In):
    """Exponential backoff between attempts."""

    initial: float = Field(default=1.0, ge=0, le=MAX_DELAY)
    factor: float = Field(default=2.0, ge=1, le=100)
    max: float = Field(default=300.0, ge=0, le=MAX_DELAY)
    jitter: bool = True


class DeclareQueueRequest(_In):
    """A queue's policy (create or update)."""

    max_attempts: int = Field(default=5, ge=1, le=1000)
    visibility_timeout: float = Field(default=30.0, gt=0, le=MAX_LEASE)
    backoff: BackoffModel | None = None
    dead_letter: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=_NAME
    )
    dedup_window: float = Field(default=300.0, ge=0, le=MAX_DELAY)


class RedriveRequest(_In):
    """Which dead letters to move back, and where to."""

    ids: list[str] | None = Field(default=None, max_length=10_000)
    to: str | None = Field(default=None, min_length=1, max_length=200, pattern=_NAME)
    limit: int | None = Field(default=None, ge=1, le=1_000_000)
    dry_run: bool = False


class PublishRequest(Body):
    """An event to copy into every matching subscription."""

    headers: Headers | None = None


class SubscriptionRequest(_In):
    """A subscription to create (idempotent by name)."""

    name: str = Field(min_length=1, max_length=200, pattern=_NAME)
    push_endpoint: str | None = Field(default=None, max_length=2000)
    secret: str | None = Field(default=None, min_length=16, max_length=200)
    filter: Headers | None = None
    max_attempts: int = Field(default=5, ge=1, le=1000)
    visibility_timeout: float = Field(default=30.0, gt=0, le=MAX_LEASE)


class DeadLetterQuery(_In):
    """Filters of the dead letter list."""

    limit: int = Field(default=50, ge=1, le=1000)
    reason: (
        Literal["failed", "lease_expired", "rejected", "undecodable", "timeout"] | None
    ) = None
    error_contains: str | None = Field(default=None, max_length=200)


class SubscriptionQuery(_In):
    """Filter of the subscription list."""

    topic: str | None = Field(default=None, max_length=200)


# -- responses ---------------------------------------------------------------------


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

    @classmethod
    def of(cls, m: Message) -> MessageModel:
        """From a :class:`Message`."""
        return cls(
            id=m.id,
            queue=m.queue,
            headers=m.headers,
            attempts=m.attempts,
            redrives=m.redrives,
            enqueued_at=m.enqueued_at,
            available_at=m.available_at,
            **body_fields(m),
        )


def body_fields(m: Message) -> dict[str, Any]:
    """``{"body": value}`` for a JSON message, else ``{"body_base64": ...}``."""
    if m.headers.get(CONTENT_TYPE, JSON_TYPE) == JSON_TYPE:
        try:
            return {"body": json.loads(m.body)}
        except (UnicodeDecodeError, json.JSONDecodeError):
            pass
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
