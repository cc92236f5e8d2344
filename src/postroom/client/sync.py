"""``Client``: the sync API, a thin facade over :class:`AsyncClient`.

Every method is one call of the async client's method on the client's private
event loop, run by the calling thread (see ``_loop.py``), so the logic exists
once, in the async client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, overload

from ..model.codec import PreparedSend
from ..model.message import (
    DeadLetter,
    Delivery,
    ErrorInfo,
    Message,
    QueuePolicy,
    QueueStats,
    Subscription,
)
from ..model.retry import Backoff
from ..model.stats import DurationHistogram, TopicInfo
from ..model.workers import WorkerInfo
from ._sync_base import SyncBase

__all__ = ["Client"]


class Client(SyncBase):
    """The sync client; ``postroom.connect()`` builds one.

    Use it as a context manager, or call :meth:`close` when done. Its methods are
    those of :class:`AsyncClient`, blocking.
    """

    # -- queues --------------------------------------------------------------------

    def declare_queue(
        self,
        queue: str,
        *,
        max_attempts: int = 5,
        visibility_timeout: float | timedelta = 30.0,
        backoff: Backoff | None = None,
        dead_letter: str | None = None,
        dedup_window: float | timedelta = 300.0,
        attributes: Mapping[str, str] | None = None,
    ) -> QueuePolicy:
        """Create ``queue`` or update its policy (idempotent); return the policy."""
        return self._call(
            self.aclient.declare_queue,
            queue,
            max_attempts=max_attempts,
            visibility_timeout=visibility_timeout,
            backoff=backoff,
            dead_letter=dead_letter,
            dedup_window=dedup_window,
            attributes=attributes,
        )

    def queue_policy(self, queue: str) -> QueuePolicy:
        """The stored policy of ``queue``; raises ``QueueNotFound``."""
        return self._call(self.aclient.queue_policy, queue)

    def queues(self) -> list[str]:
        """Names of every queue, sorted."""
        return self._call(self.aclient.queues)

    def delete_queue(self, queue: str) -> None:
        """Delete ``queue`` with its messages, dead letters and policy."""
        self._call(self.aclient.delete_queue, queue)

    # -- sending -------------------------------------------------------------------

    def send(
        self,
        queue: str,
        body: Any,
        *,
        delay: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
        dedup_key: str | None = None,
    ) -> str:
        """Put one message on ``queue``; return its id once it is durable."""
        return self._call(
            self.aclient.send,
            queue,
            body,
            delay=delay,
            headers=headers,
            dedup_key=dedup_key,
        )

    def send_many(
        self,
        queue: str,
        bodies: Iterable[Any],
        *,
        delay: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Put several messages on ``queue`` in one round trip; return their ids."""
        return self._call(
            self.aclient.send_many, queue, list(bodies), delay=delay, headers=headers
        )

    # -- receiving -----------------------------------------------------------------

    def receive(
        self,
        queue: str,
        max_messages: int = 1,
        visibility_timeout: float | timedelta | None = None,
        wait: float | timedelta = 0.0,
    ) -> list[Delivery]:
        """Lease up to ``max_messages``; with ``wait``, long-poll that many seconds."""
        return self._call(
            self.aclient.receive, queue, max_messages, visibility_timeout, wait
        )

    def ack(self, delivery: Delivery) -> None:
        """Delete the message; raises ``LeaseLost`` if the lease was lost."""
        self._call(self.aclient.ack, delivery)

    def ack_many(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Ack several deliveries; return those whose lease was lost."""
        return self._call(self.aclient.ack_many, deliveries)

    def ack_and_receive(
        self,
        deliveries: Sequence[Delivery],
        queue: str,
        max_messages: int = 1,
        visibility_timeout: float | timedelta | None = None,
    ) -> tuple[list[Delivery], list[Delivery]]:
        """Ack ``deliveries`` and lease up to ``max_messages`` of ``queue`` in one
        round trip where the backend allows; return ``(lost leases, received)``."""
        return self._call(
            self.aclient.ack_and_receive,
            deliveries,
            queue,
            max_messages,
            visibility_timeout,
        )

    def retry(
        self,
        delivery: Delivery,
        delay: float | timedelta | None = None,
        error: BaseException | ErrorInfo | str | None = None,
    ) -> None:
        """Give the message back after ``delay`` (default: the backoff policy)."""
        self._call(self.aclient.retry, delivery, delay, error)

    def fail(
        self,
        delivery: Delivery,
        error: BaseException | ErrorInfo | str | None,
        *,
        delay: float | timedelta | None = None,
        outcome: str = "failed",
    ) -> bool:
        """Record a failed attempt; return whether it was dead-lettered."""
        return self._call(
            self.aclient.fail, delivery, error, delay=delay, outcome=outcome
        )

    def reject(
        self,
        delivery: Delivery,
        error: BaseException | ErrorInfo | str | None = "rejected",
        *,
        reason: str = "rejected",
    ) -> None:
        """Move the message to the dead letter queue at once."""
        self._call(self.aclient.reject, delivery, error, reason=reason)

    def extend(self, delivery: Delivery, seconds: float | timedelta) -> Delivery:
        """Lease the message for ``seconds`` more from now; return the new delivery."""
        return self._call(self.aclient.extend, delivery, seconds)

    def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give messages back at once without counting the attempt."""
        self._call(self.aclient.release, deliveries)

    # -- inspection ----------------------------------------------------------------

    @overload
    def stats(self, queue: None = None) -> dict[str, QueueStats]: ...
    @overload
    def stats(self, queue: str) -> QueueStats: ...

    def stats(self, queue: str | None = None) -> dict[str, QueueStats] | QueueStats:
        """Depths of one queue, or of every queue as a dict by name."""
        if queue is None:
            return self._call(self.aclient.stats)
        return self._call(self.aclient.stats, queue)

    def peek(self, queue: str, limit: int = 10) -> list[Message]:
        """Look at up to ``limit`` messages without leasing them."""
        return self._call(self.aclient.peek, queue, limit)

    def dead_letters(
        self,
        queue: str,
        limit: int = 50,
        reason: str | None = None,
        error_contains: str | None = None,
    ) -> list[DeadLetter]:
        """Dead letters of ``queue``, oldest first, filtered."""
        return self._call(
            self.aclient.dead_letters, queue, limit, reason, error_contains
        )

    def dead_letter(self, queue: str, message_id: str) -> DeadLetter:
        """One dead letter of ``queue`` by message id."""
        return self._call(self.aclient.dead_letter, queue, message_id)

    def redrive(
        self,
        queue: str,
        ids: Sequence[str] | None = None,
        to: str | None = None,
        limit: int | None = None,
        rate: float | None = None,
        dry_run: bool = False,
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Move dead letters back to their queue (or ``to``); return their ids."""
        return self._call(
            self.aclient.redrive,
            queue,
            ids,
            to,
            limit,
            rate,
            dry_run,
            on_progress=on_progress,
        )

    def purge(self, queue: str, dead: bool = False) -> int:
        """Delete every message of ``queue`` (or its dead letters)."""
        return self._call(self.aclient.purge, queue, dead)

    # -- topics --------------------------------------------------------------------

    def publish(
        self, topic: str, body: Any, headers: Mapping[str, str] | None = None
    ) -> str:
        """Copy an event into every matching subscription of ``topic``."""
        return self._call(self.aclient.publish, topic, body, headers)

    def create_subscription(
        self,
        topic: str,
        name: str,
        *,
        push_endpoint: str | None = None,
        secret: str | None = None,
        filter: Mapping[str, str] | None = None,
        max_attempts: int = 5,
        visibility_timeout: float | timedelta = 30.0,
        backoff: Backoff | None = None,
    ) -> Subscription:
        """Create a durable subscription of ``topic`` (idempotent by name)."""
        return self._call(
            self.aclient.create_subscription,
            topic,
            name,
            push_endpoint=push_endpoint,
            secret=secret,
            filter=filter,
            max_attempts=max_attempts,
            visibility_timeout=visibility_timeout,
            backoff=backoff,
        )

    def subscriptions(self, topic: str | None = None) -> list[Subscription]:
        """Subscriptions of ``topic``, or all of them."""
        return self._call(self.aclient.subscriptions, topic)

    def subscription(self, topic: str, name: str) -> Subscription:
        """One subscription; raises ``SubscriptionNotFound``."""
        return self._call(self.aclient.subscription, topic, name)

    def delete_subscription(self, topic: str, name: str) -> None:
        """Delete a subscription and its queue."""
        self._call(self.aclient.delete_subscription, topic, name)

    def topics(self) -> list[TopicInfo]:
        """Every topic with its subscription count and publish counters."""
        return self._call(self.aclient.topics)

    # -- what the worker, server and tools read ------------------------------------

    def ensure_queue(self, queue: str) -> QueuePolicy:
        """The policy of ``queue``, creating the queue when it does not exist."""
        return self._call(self.aclient.ensure_queue, queue)

    def prepare_send(
        self,
        queue: str,
        body: Any,
        *,
        delay: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
        dedup_key: str | None = None,
    ) -> PreparedSend:
        """What :meth:`send` stores, without storing it."""
        return self._call(
            self.aclient.prepare_send,
            queue,
            body,
            delay=delay,
            headers=headers,
            dedup_key=dedup_key,
        )

    def wait_for_messages(self, queue: str, timeout: float) -> None:
        """Block until ``queue`` may have a visible message, or ``timeout`` seconds."""
        self._call(self.aclient.wait_for_messages, queue, timeout)

    def queue_stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Depths of the named queues in one round trip, in the same order."""
        return self._call(self.aclient.queue_stats, queues)

    def counters(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        """Lifetime counters of the named queues, summed over every process."""
        return self._call(self.aclient.counters, queues)

    def durations(self, queues: Sequence[str]) -> dict[str, DurationHistogram]:
        """Handler duration histograms of the named queues, over every process."""
        return self._call(self.aclient.durations, queues)

    def record_durations(
        self, queue: str, observations: Mapping[str, int], count: int, sum_ms: int
    ) -> None:
        """Add a batch of handler durations of ``queue`` to its histogram."""
        self._call(self.aclient.record_durations, queue, observations, count, sum_ms)

    def workers(self) -> list[WorkerInfo]:
        """The worker processes seen within their last few heartbeats."""
        return self._call(self.aclient.workers)

    def put_worker(self, info: WorkerInfo) -> None:
        """Write a worker's record (a heartbeat)."""
        self._call(self.aclient.put_worker, info)

    def delete_worker(self, worker_id: str) -> None:
        """Remove a worker's record (it stopped)."""
        self._call(self.aclient.delete_worker, worker_id)
