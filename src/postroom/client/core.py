"""``AsyncClient``: every queue and topic operation, over one backend.

The client is the only caller of a :class:`~postroom.backends.base.Backend`: the
worker, the pusher, the HTTP server and the CLI use its public methods. The
methods are grouped by subject: connection and policies in
:mod:`~postroom.client._base`, dead letters in :mod:`~postroom.client._dead`,
topics in :mod:`~postroom.client._topics`, depths, counters and durations in
:mod:`~postroom.client._inspect`, queues and messages here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from functools import partial
from typing import Any

import anyio

from ..model import arguments as check
from ..model import tracing, validate
from ..model.codec import PreparedSend, build_message
from ..model.errors import (
    BackendError,
    DeadLetterNotFound,
    LeaseLost,
    NotSupported,
    QueueNotFound,
)
from ..model.message import (
    Delivery,
    ErrorInfo,
    Message,
    QueuePolicy,
    now_ms,
)
from ..model.names import (
    dead_letter_queue_name,
    subscription_queue_name,
)
from ..model.retry import Backoff, to_ms
from ..model.retry import seconds as to_seconds
from ..model.settlement import Burial, Failure
from ._base import default_consumer_id
from ._dead import DeadLetters
from ._inspect import Inspection
from ._order import require_order
from ._samples import Samples
from ._settle import Settling
from ._topics import Topics
from ._workers import WorkerRegistry

__all__ = [
    "AsyncClient",
    "DeadLetterNotFound",
    "default_consumer_id",
    "subscription_queue_name",
]


class AsyncClient(Settling, DeadLetters, Topics, WorkerRegistry, Inspection, Samples):
    """The async client; ``postroom.connect_async()`` builds one.

    Use it as an async context manager, or call :meth:`aclose` when done. Every
    method of the sync :class:`postroom.Client` is a method of this class.
    """

    async def connect(self) -> AsyncClient:
        """Connect to the backend (done on first use when not called)."""
        await self._open()
        return self

    async def __aenter__(self) -> AsyncClient:
        return await self.connect()

    # -- queues --------------------------------------------------------------------

    async def declare_queue(
        self,
        queue: str,
        *,
        max_attempts: int = 5,
        visibility_timeout: float | timedelta = 30.0,
        backoff: Backoff | None = None,
        dead_letter: str | None = None,
        dedup_window: float | timedelta = 300.0,
        attributes: Mapping[str, str] | None = None,
        rate_limit: float | None = None,
    ) -> QueuePolicy:
        """Create ``queue`` or update its policy (idempotent); return the policy.

        ``attributes`` (str -> str) are stored with the policy for other
        interfaces, e.g. the SQS endpoint's queue attributes. ``rate_limit``
        caps the deliveries per second across all consumers (retries included).
        """
        check.check_declare(
            queue,
            max_attempts,
            visibility_timeout,
            backoff,
            dead_letter,
            dedup_window,
            rate_limit,
        )
        validate.headers(attributes, "attributes")
        require_order(self.backend, rate_limit=rate_limit)
        policy = QueuePolicy(
            max_attempts=max_attempts,
            visibility_timeout=to_seconds(visibility_timeout) or 30.0,
            backoff=backoff or Backoff(),
            dead_letter=dead_letter or dead_letter_queue_name(queue),
            dedup_window=to_seconds(dedup_window) or 0.0,
            attributes=dict(attributes or {}),
            rate_limit=None if rate_limit is None else float(rate_limit),
        )
        stored = await (await self._b()).declare_queue(queue, policy, replace=True)
        return self._remember(queue, stored)

    async def queues(self) -> list[str]:
        """Names of every queue (subscription queues included), sorted."""
        return await (await self._b()).list_queues()

    async def delete_queue(self, queue: str) -> None:
        """Delete ``queue`` with its messages, dead letters and policy.

        Raises :class:`QueueNotFound` when there is no such queue. A later
        ``send`` to the name creates a new, empty queue.
        """
        validate.name(queue)
        self._policies.pop(queue, None)
        if not await (await self._b()).delete_queue(queue):
            raise QueueNotFound(queue)

    # -- sending -------------------------------------------------------------------

    async def send(
        self,
        queue: str,
        body: Any,
        *,
        delay: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
        dedup_key: str | None = None,
        group: str | None = None,
        priority: int = 0,
    ) -> str:
        """Put one message on ``queue``; return its id once it is durable.

        ``delay`` hides it for that many seconds. With ``dedup_key``, a repeat send
        while the first message is known returns the first id and adds nothing.
        Messages of one ``group`` are delivered in send order, one at a time;
        ``priority`` (0 to 9) delivers higher ones first (``docs/scheduling.md``).
        """
        with tracing.producer_span(queue, "send") as span:
            ready = await self.prepare_send(
                queue,
                body,
                delay=delay,
                headers=headers,
                dedup_key=dedup_key,
                group=group,
                priority=priority,
            )
            msgs, window = [ready.message], ready.dedup_window_ms
            [mid] = await self._store(queue, msgs, window)
            if span is not None:
                span.set_attribute("messaging.message.id", mid)
        return mid

    async def _store(self, queue: str, msgs: list[Message], window: int) -> list[str]:
        """Store built messages; a failed try is retried once with the same ids.

        A try that raised may have committed (the connection broke after the
        backend stored them); every backend stores an id it already has once, so
        the second try cannot duplicate them.
        """
        try:
            return await self.backend.enqueue(queue, msgs, dedup_window_ms=window)
        except BackendError:
            return await self.backend.enqueue(queue, msgs, dedup_window_ms=window)

    async def prepare_send(
        self,
        queue: str,
        body: Any,
        *,
        delay: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
        dedup_key: str | None = None,
        group: str | None = None,
        priority: int = 0,
    ) -> PreparedSend:
        """What :meth:`send` stores, without storing it: the queue is created if
        missing, the message built (id, encoded body, times). Used to store it
        another way, e.g. inside your own database transaction."""
        options = {"delay": delay, "headers": headers, "dedup_key": dedup_key}
        # Built before the queue is created: a refused body changes nothing.
        msg = self._build(queue, body, group=group, priority=priority, **options)
        policy = await self.ensure_queue(queue)
        return PreparedSend(msg, round(policy.dedup_window * 1000))

    def _build(self, queue: str, body: Any, **options: Any) -> Message:
        """The message :meth:`send` stores, its arguments checked (``options``:
        the keyword arguments of :meth:`send`)."""
        delay, headers = options.get("delay"), options.get("headers")
        dedup_key, group = options.get("dedup_key"), options.get("group")
        priority = options.get("priority", 0)
        check.check_send(queue, delay, headers, dedup_key)
        if group is not None or type(priority) is not int or priority:
            require_order(self.backend, group=group, priority=priority)
        return build_message(
            queue,
            body,
            now=now_ms(),
            delay_ms=to_ms(delay) or 0,
            headers=tracing.inject(headers),
            dedup_key=dedup_key,
            group=group,
            priority=priority,
        )

    def _send_blocking(self, queue: str, body: Any, **options: Any) -> str | None:
        """:meth:`send`, blocking, without the event loop (the sync client's
        send): when the backend stores from the caller's thread
        (:meth:`Backend.enqueue_blocking`) and the queue's policy is known;
        otherwise (a name that is no str too) ``None``, storing nothing."""
        ok = self._connected and not self._no_blocking_send and isinstance(queue, str)
        policy = self._cached_policy(queue) if ok else None
        if policy is None:
            return None
        window = round(policy.dedup_window * 1000)
        with tracing.producer_span(queue, "send") as span:
            msgs = [self._build(queue, body, **options)]
            try:
                [mid] = self._store_blocking(queue, msgs, window)
            except NotSupported:
                self._no_blocking_send = True
                return None
            if span is not None:
                span.set_attribute("messaging.message.id", mid)
        return mid

    def _store_blocking(
        self, queue: str, msgs: list[Message], window: int
    ) -> list[str]:
        """:meth:`_store`, blocking."""
        try:
            return self.backend.enqueue_blocking(queue, msgs, dedup_window_ms=window)
        except BackendError:
            return self.backend.enqueue_blocking(queue, msgs, dedup_window_ms=window)

    async def send_many(
        self,
        queue: str,
        bodies: Iterable[Any],
        *,
        delay: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
        group: str | None = None,
        priority: int = 0,
    ) -> list[str]:
        """Put several messages on ``queue`` in one round trip; return their ids
        (with ``group``, they join it in the order given)."""
        check.check_send_many(queue, bodies, delay, headers)
        require_order(self.backend, group=group, priority=priority)
        with tracing.producer_span(queue, "send") as span:
            now, delay_ms = now_ms(), to_ms(delay) or 0
            build = partial(
                build_message,
                queue,
                now=now,
                delay_ms=delay_ms,
                headers=tracing.inject(headers),
                group=group,
                priority=priority,
            )
            msgs = [build(b) for b in bodies]
            if not msgs:
                return []
            if span is not None:
                span.set_attribute("messaging.batch.message_count", len(msgs))
            policy = await self.ensure_queue(queue)
            window = round(policy.dedup_window * 1000)
            return await self._store(queue, msgs, window)

    # -- receiving -----------------------------------------------------------------

    async def receive(
        self,
        queue: str,
        max_messages: int = 1,
        visibility_timeout: float | timedelta | None = None,
        wait: float | timedelta = 0.0,
    ) -> list[Delivery]:
        """Lease up to ``max_messages``; with ``wait``, long-poll that many seconds."""
        check.check_receive(queue, max_messages, visibility_timeout, wait)
        policy = await self.queue_policy(queue)
        lease_ms = to_ms(visibility_timeout) or policy.lease_ms
        deadline = time.monotonic() + (to_seconds(wait) or 0.0)
        backend = self.backend
        while True:
            got = await backend.claim(queue, max_messages, lease_ms, self.consumer)
            if got:
                return got
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await self.wait_for_messages(queue, remaining)

    async def _claim_for(self, queue: str, max_messages: int) -> list[Delivery]:
        """:meth:`receive` without a wait, for the consumer loop, whose queue and
        count are known good (the checks cost as much as a woken claim's
        hand-out): leases as long as the queue's visibility timeout."""
        policy = self._cached_policy(queue) or await self.queue_policy(queue)
        return await self.backend.claim(
            queue, max_messages, policy.lease_ms, self.consumer
        )

    async def wait_for_messages(self, queue: str, timeout: float) -> None:
        """Block until ``queue`` may have a visible message, or ``timeout`` seconds.

        May return early; cancel it (a cancel scope) to stop waiting. Nothing is
        claimed: call :meth:`receive` after it. While the queue's rate limit
        holds its messages back, it sleeps until the next permit instead.
        """
        check.queue_name(queue)
        validate.wait(timeout, "timeout")
        held = self.rate_limit_wait(queue)
        if held > 0:
            await anyio.sleep(min(timeout, held))
            return
        await (await self._b()).wait(queue, timeout)

    async def ack(self, delivery: Delivery) -> None:
        """Delete the message; raises :class:`LeaseLost` if the lease was lost."""
        check.check_delivery(delivery)
        lost = await (await self._b()).ack([delivery])
        if lost:
            raise LeaseLost(
                f"lease of message {delivery.id} was lost (it expired and the message "
                "was delivered again, or was already acked): nothing was deleted; "
                "raise the queue's visibility_timeout or call extend() for long work"
            )

    async def ack_many(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Ack several deliveries in one round trip; return the lost leases."""
        check.check_deliveries(deliveries)
        if not deliveries:
            return []
        return await (await self._b()).ack(deliveries)

    async def retry(
        self,
        delivery: Delivery,
        delay: float | timedelta | None = None,
        error: BaseException | ErrorInfo | str | None = None,
    ) -> None:
        """Give the message back after ``delay`` (default: the backoff policy).

        The attempt counts: once ``attempts >= max_attempts`` the message goes to the
        dead letter queue (reason ``failed``) instead.
        """
        check.check_fail(delivery, error, delay, "failed")
        await self.fail(delivery, error, delay=delay, outcome="failed")

    async def fail(
        self,
        delivery: Delivery,
        error: BaseException | ErrorInfo | str | None,
        *,
        delay: float | timedelta | None = None,
        outcome: str = "failed",
    ) -> bool:
        """Record a failed attempt: retry, or dead-letter when attempts are used up.

        ``outcome`` is ``failed`` or ``timeout``. Returns whether it was dead-lettered.
        """
        check.check_fail(delivery, error, delay, outcome)
        policy = await self.queue_policy(delivery.queue)
        step = self._decision(Failure(delivery, error, outcome, delay), policy)
        if isinstance(step, Burial):
            await self.backend.dead_letter(delivery, step.reason, step.entry)
            return True
        await self.backend.retry(delivery, step.delay_ms, step.entry)
        return False

    async def reject(
        self,
        delivery: Delivery,
        error: BaseException | ErrorInfo | str | None = "rejected",
        *,
        reason: str = "rejected",
    ) -> None:
        """Move the message to the dead letter queue at once (poison message)."""
        check.check_reject(delivery, error, reason)
        entry = self._entry(delivery, reason, error)
        await (await self._b()).dead_letter(delivery, reason, entry)

    async def extend(self, delivery: Delivery, seconds: float | timedelta) -> Delivery:
        """Lease the message for ``seconds`` more from now; return the new delivery."""
        check.check_extend(delivery, seconds)
        lease_ms = to_ms(seconds) or 0
        return await (await self._b()).extend(delivery, lease_ms)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give messages back at once without counting the attempt (shutdown)."""
        check.check_deliveries(deliveries)
        if deliveries:
            await (await self._b()).release(deliveries)
