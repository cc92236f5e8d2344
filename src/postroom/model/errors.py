"""Errors raised by postroom.

Every error derives from one root, so ``except postroom.PostroomError`` catches them
all; each message says what happened and what to do about it::

    PostroomError
    ├── ConfigurationError      bad URL, unknown scheme, invalid option
    │   ├── InvalidArgument     an argument out of range or of the wrong type
    │   └── MissingDependency   an optional extra is not installed
    ├── BackendError            the broker failed or could not be reached
    ├── QueueNotFound           a read or admin operation named an unknown queue
    ├── SubscriptionNotFound    an unknown topic subscription
    ├── DeadLetterNotFound      no dead letter with that id on that queue
    ├── LeaseLost               ack/retry/extend with a receipt whose lease was lost
    ├── SerializationError      a body that cannot be encoded
    ├── DecodeError             a body that cannot be decoded into the handler's type
    ├── NotSupported            the backend cannot do this operation
    └── HandlerSignal           raised by handlers to steer the outcome
        ├── Retry               retry after a delay
        └── Reject              dead-letter at once (poison message)
"""

from __future__ import annotations

from datetime import timedelta

__all__ = [
    "BackendError",
    "ConfigurationError",
    "DeadLetterNotFound",
    "DecodeError",
    "HandlerSignal",
    "InvalidArgument",
    "LeaseLost",
    "MissingDependency",
    "NotSupported",
    "PostroomError",
    "QueueNotFound",
    "Reject",
    "Retry",
    "SerializationError",
    "SubscriptionNotFound",
]


class PostroomError(Exception):
    """Root of every error raised by postroom."""


class ConfigurationError(PostroomError):
    """A URL, option or setting is invalid."""


class InvalidArgument(ConfigurationError, ValueError):
    """An argument of a public call is out of range or of the wrong type.

    The message names the argument, what is wrong with the value and what is
    accepted. Nothing was sent to the backend: the call changed nothing. It is
    also a ``ValueError``, as the checks it replaces raised.
    """


class MissingDependency(ConfigurationError):
    """An optional dependency is needed; the message names the extra to install."""


class BackendError(PostroomError):
    """The backend failed or could not be reached."""


class QueueNotFound(PostroomError):
    """A reading or admin operation named a queue that was never created."""

    def __init__(self, queue: str) -> None:
        super().__init__(
            f"queue {queue!r} does not exist: send to it or declare it with "
            "declare_queue() first, or check the name (`postroom queues` lists them)"
        )
        self.queue = queue


class SubscriptionNotFound(PostroomError):
    """A subscription that does not exist was named."""

    def __init__(self, topic: str, name: str) -> None:
        super().__init__(
            f"subscription {name!r} of topic {topic!r} does not exist: create it with "
            "create_subscription() (`postroom subscriptions list` shows them)"
        )
        self.topic = topic
        self.name = name


class DeadLetterNotFound(PostroomError):
    """No dead letter with that id on that queue."""


class LeaseLost(PostroomError):
    """The delivery's lease expired and the message was leased again.

    The message now belongs to another consumer and was left untouched. Raise the
    queue's ``visibility_timeout`` or call ``extend()`` for long work.
    """


class SerializationError(PostroomError):
    """A message body could not be encoded."""


class DecodeError(PostroomError):
    """A message body could not be decoded or validated into the handler's type."""


class NotSupported(PostroomError):
    """The backend does not support this operation."""


class HandlerSignal(PostroomError):
    """Base of the exceptions a handler raises to choose its message's outcome."""


class Retry(HandlerSignal):
    """Raise from a handler to retry the message after ``delay`` seconds.

    Without a delay the queue's backoff policy decides. The attempt counts toward
    ``max_attempts``.
    """

    def __init__(
        self, delay: float | timedelta | None = None, reason: str | None = None
    ) -> None:
        from .validate import delay as valid_delay

        valid_delay(delay, "Retry delay")  # refused here: raised in the handler
        super().__init__(reason or "retry requested by handler")
        self.delay = delay
        self.reason = reason


class Reject(HandlerSignal):
    """Raise from a handler to move the message to its dead letter queue at once."""

    def __init__(self, reason: str = "rejected by handler") -> None:
        super().__init__(reason)
        self.reason = reason
