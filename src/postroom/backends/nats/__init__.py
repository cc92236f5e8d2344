"""``nats://``: NATS JetStream (server >= 2.9) through nats-py.

Each queue is a work-queue stream read by one durable pull consumer, with a
stream of delayed messages and a stream of dead letters beside it; policies,
counters, topics and subscriptions live in a KV bucket. ``docs/backends/nats.md``
says what is native and what is emulated, with the cost and limits of each.
"""

from __future__ import annotations

from ._backend import NatsBackend

__all__ = ["NatsBackend"]
