"""Request documents of the HTTP API (pydantic models).

Bodies travel as JSON values (``body``) or, for bytes, as base64 (``body_base64``).
Durations are seconds; times are ISO 8601 strings in UTC.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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
    """Which dead letters to move back (``ids``, or ``all``), and where to.

    The choice is explicit: ``{}`` redrives nothing and is refused (422).
    ``limit`` caps ``all`` to the oldest dead letters.
    """

    ids: list[str] | None = Field(default=None, min_length=1, max_length=10_000)
    all: bool = False
    to: str | None = Field(default=None, min_length=1, max_length=200, pattern=_NAME)
    limit: int | None = Field(default=None, ge=1, le=1_000_000)
    dry_run: bool = False

    @model_validator(mode="after")
    def _explicit(self) -> RedriveRequest:
        if (self.ids is not None) == self.all:
            raise ValueError(
                'say which dead letters to redrive: "ids": [...] or "all": true'
            )
        return self


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
