"""Request documents of the HTTP API (pydantic models).

Bodies travel as JSON values (``body``) or, for bytes, as base64 (``body_base64``).
Durations are seconds; times are ISO 8601 strings in UTC.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..model.validate import (
    MAX_LEASE_SECONDS,
    MAX_PRIORITY,
    MAX_RATE,
    MIN_LEASE_SECONDS,
    MIN_RATE_LIMIT,
)
from ._types import (
    B64_PATTERN,
    NUMBER,
    Bool,
    HeaderValue,
    Name,
    Part,
    Text,
    header_names,
)

MAX_WAIT = 20.0
MAX_LEASE = MAX_LEASE_SECONDS
MIN_LEASE = MIN_LEASE_SECONDS
MAX_DELAY = 14 * 24 * 3600.0

# What a push endpoint looks like (the server also resolves its host, see
# postroom.runtime.egress); receipts are URL-safe base64.
_ENDPOINT = (
    r"^[hH][tT][tT][pP][sS]?://[A-Za-z0-9._~-]+(?::[0-9]{1,4})?(?:[/?#][!-~]*)?$"
)
_RECEIPT = r"^[A-Za-z0-9_-]+$"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Body(_In):
    """A message body: a JSON value in ``body`` or bytes in ``body_base64``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [{"required": ["body"]}, {"required": ["body_base64"]}]
        },
    )

    body: Any = None
    body_base64: str = Field(default="", json_schema_extra={"pattern": B64_PATTERN})

    @model_validator(mode="after")
    def _one_body(self) -> Body:
        has_json = "body" in self.model_fields_set
        has_bytes = "body_base64" in self.model_fields_set
        if has_json == has_bytes:
            raise ValueError("give exactly one of 'body' (JSON) or 'body_base64'")
        if has_bytes:
            try:
                base64.b64decode(self.body_base64, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError("body_base64 is not valid base64") from exc
        return self

    def payload(self) -> Any:
        """The body to hand to the client: bytes for base64, else the JSON value."""
        if "body_base64" in self.model_fields_set:
            return base64.b64decode(self.body_base64)
        return self.body


Headers = Annotated[
    dict[str, HeaderValue], Field(max_length=100, json_schema_extra=header_names)
]


Priority = Annotated[int, Field(ge=0, le=MAX_PRIORITY), NUMBER]


class SendRequest(Body):
    """One message to send; ``group``: its FIFO group, ``priority``: 0 to 9 (9 is
    delivered first)."""

    headers: Headers | None = None
    delay: Annotated[float, Field(ge=0, le=MAX_DELAY), NUMBER] | None = None
    dedup_key: Text | None = None
    group: Name | None = None
    priority: Priority = 0


class BatchSendRequest(_In):
    """Several messages sent in one call, sharing ``headers``, ``delay``,
    ``group`` (they join it in order) and ``priority``."""

    messages: list[Body] = Field(min_length=1)
    headers: Headers | None = None
    delay: Annotated[float, Field(ge=0, le=MAX_DELAY), NUMBER] | None = None
    group: Name | None = None
    priority: Priority = 0


class ReceiveRequest(_In):
    """Lease up to ``max_messages``; ``wait`` long-polls up to 20 seconds."""

    max_messages: Annotated[int, Field(ge=1, le=100), NUMBER] = 1
    visibility_timeout: (
        Annotated[float, Field(ge=MIN_LEASE, le=MAX_LEASE), NUMBER] | None
    ) = None
    wait: Annotated[float, Field(ge=0, le=MAX_WAIT), NUMBER] = 0.0


class ErrorModel(BaseModel):
    """An error: type, message and traceback."""

    type: str = Field(default="Error", max_length=200)
    message: str = Field(default="", max_length=10_000)
    traceback: str = Field(default="", max_length=100_000)


class ReceiptRequest(_In):
    """Identifies a delivery: the ``receipt`` from receive (and its message id)."""

    receipt: str = Field(
        min_length=1, max_length=4096, json_schema_extra={"pattern": _RECEIPT}
    )
    id: str | None = Field(default=None, max_length=200)


class BatchAckRequest(_In):
    """Several receipts to ack in one round trip."""

    receipts: list[
        Annotated[
            str,
            Field(
                min_length=1, max_length=4096, json_schema_extra={"pattern": _RECEIPT}
            ),
        ]
    ] = Field(min_length=1)


class RetryRequest(ReceiptRequest):
    """Give a message back after ``delay`` seconds (default: the backoff policy)."""

    delay: Annotated[float, Field(ge=0, le=MAX_DELAY), NUMBER] | None = None
    error: str | ErrorModel | None = None


class RejectRequest(ReceiptRequest):
    """Move a message to the dead letter queue at once."""

    error: str | ErrorModel | None = None


class ExtendRequest(ReceiptRequest):
    """Lease the message for ``seconds`` more from now."""

    seconds: Annotated[float, Field(ge=MIN_LEASE, le=MAX_LEASE), NUMBER]


class BackoffModel(_In):
    """Exponential backoff between attempts."""

    initial: Annotated[float, Field(ge=0, le=MAX_DELAY), NUMBER] = 1.0
    factor: Annotated[float, Field(ge=1, le=100), NUMBER] = 2.0
    max: Annotated[float, Field(ge=0, le=MAX_DELAY), NUMBER] = 300.0
    jitter: Bool = True


class DeclareQueueRequest(_In):
    """A queue's policy (create or update)."""

    max_attempts: Annotated[int, Field(ge=1, le=1000), NUMBER] = 5
    visibility_timeout: Annotated[float, Field(ge=MIN_LEASE, le=MAX_LEASE), NUMBER] = (
        30.0
    )
    backoff: BackoffModel | None = None
    dead_letter: Name | None = None
    dedup_window: Annotated[float, Field(ge=0, le=MAX_DELAY), NUMBER] = 300.0
    rate_limit: (
        Annotated[float, Field(ge=MIN_RATE_LIMIT, le=MAX_RATE), NUMBER] | None
    ) = None


class RedriveRequest(_In):
    """Which dead letters to move back (``ids``, or ``all``), and where to.

    The choice is explicit: ``{}`` redrives nothing and is refused (422).
    ``limit`` caps ``all`` to the oldest dead letters.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["ids"],
                    "properties": {"ids": {"type": "array"}, "all": {"const": False}},
                },
                {
                    "required": ["all"],
                    "properties": {"all": {"const": True}, "ids": {"type": "null"}},
                },
            ]
        },
    )

    ids: list[Text] | None = Field(default=None, min_length=1, max_length=10_000)
    all: Bool = False
    to: Name | None = None
    limit: Annotated[int, Field(ge=1, le=1_000_000), NUMBER] | None = None
    dry_run: Bool = False

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

    name: Part
    push_endpoint: str | None = Field(
        default=None, max_length=2000, json_schema_extra={"pattern": _ENDPOINT}
    )
    secret: str | None = Field(
        default=None,
        min_length=16,
        max_length=200,
        json_schema_extra={"pattern": "^[^\0]+$"},
    )
    filter: Headers | None = None
    max_attempts: Annotated[int, Field(ge=1, le=1000), NUMBER] = 5
    visibility_timeout: Annotated[float, Field(ge=MIN_LEASE, le=MAX_LEASE), NUMBER] = (
        30.0
    )


class DeadLetterQuery(_In):
    """Filters of the dead letter list."""

    limit: Annotated[int, Field(ge=1, le=1000)] = 50  # a query parameter: text
    reason: (
        Literal["failed", "lease_expired", "rejected", "undecodable", "timeout"] | None
    ) = None
    error_contains: Text | None = None


class SubscriptionQuery(_In):
    """Filter of the subscription list."""

    topic: Name | None = None
