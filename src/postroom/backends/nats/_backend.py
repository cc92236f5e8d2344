"""``NatsBackend``: the parts put together."""

from __future__ import annotations

from ..base import ORDERED, Capabilities
from ._dead import DeadLetters
from ._topics import Topics
from ._workers import Workers

__all__ = ["NatsBackend"]


class NatsBackend(Topics, DeadLetters, Workers):
    """Queues, dead letters and topics on NATS JetStream (``nats://host:port``).

    ``?prefix=NAME`` (default ``postroom``) prefixes every stream, subject and KV
    bucket, so that several applications (or tests) share one server apart.
    """

    capabilities = Capabilities(
        durable=True,
        cross_process=True,
        native_wakeups=True,
        worker_registry=True,
        samples=True,
        **ORDERED,
    )
