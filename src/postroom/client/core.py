"""``AsyncClient``: every queue and topic operation, over one backend."""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from types import TracebackType
from typing import Any, overload

import anyio

from ..backends._common import check_queue_name
from ..backends.base import Backend, TopicInfo, open_backend
from ..model.codec import CONTENT_TYPE, encode_body
from ..model.errors import (
    ConfigurationError,
    LeaseLost,
    PostroomError,
    QueueNotFound,
    SubscriptionNotFound,
)
from ..model.ids import new_id
from ..model.message import (
    DeadLetter,
    Delivery,
    ErrorInfo,
    HistoryEntry,
    Message,
    QueuePolicy,
    QueueStats,
    Subscription,
    dead_letter_queue_name,
    from_ms,
    now_ms,
)
from ..model.retry import Backoff, to_ms
from ..model.retry import seconds as to_seconds
from .config import resolve_url

__all__ = ["AsyncClient", "DeadLetterNotFound", "subscription_queue_name"]

_POLICY_TTL = 2.0
_REDRIVE_BATCH = 100


class DeadLetterNotFound(PostroomError):
    """No dead letter with that id on that queue."""


def subscription_queue_name(topic: str, name: str) -> str:
    """The name of the queue behind subscription ``name`` of ``topic``."""
    return f"{topic}:{name}"


def default_consumer_id() -> str:
    """``host:pid:random``, naming this consumer in attempt histories."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def _error_info(error: BaseException | ErrorInfo | str | None) -> ErrorInfo | None:
    if error is None or isinstance(error, ErrorInfo):
        return error
    if isinstance(error, BaseException):
        return ErrorInfo.from_exception(error)
    return ErrorInfo(type="Error", message=str(error))


class AsyncClient:
    """The async client; ``postroom.connect_async()`` builds one.

    Use it as an async context manager, or call :meth:`aclose` when done. Every
    method of the sync :class:`postroom.Client` is a method of this class.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        backend: Backend | None = None,
        consumer: str | None = None,
    ) -> None:
        self.url = backend.url if backend is not None else resolve_url(url)
        self.backend = backend if backend is not None else open_backend(self.url)
        self.consumer = consumer or default_consumer_id()
        self._connected = False
        self._connect_lock: anyio.Lock | None = None
        self._policies: dict[str, tuple[QueuePolicy, float]] = {}

    # -- lifecycle -----------------------------------------------------------------

    async def connect(self) -> AsyncClient:
        """Connect to the backend (done on first use when not called)."""
        if self._connected:
            return self
        if self._connect_lock is None:
            self._connect_lock = anyio.Lock()
        async with self._connect_lock:
            if not self._connected:
                await self.backend.connect()
                self._connected = True
        return self

    async def aclose(self) -> None:
        """Close the backend's connections."""
        if self._connected:
            self._connected = False
            await self.backend.aclose()

    async def __aenter__(self) -> AsyncClient:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _b(self) -> Backend:
        if not self._connected:
            await self.connect()
        return self.backend

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
    ) -> QueuePolicy:
        """Create ``queue`` or update its policy (idempotent); return the policy."""
        check_queue_name(queue)
        policy = QueuePolicy(
            max_attempts=max_attempts,
            visibility_timeout=to_seconds(visibility_timeout) or 30.0,
            backoff=backoff or Backoff(),
            dead_letter=dead_letter or dead_letter_queue_name(queue),
            dedup_window=to_seconds(dedup_window) or 0.0,
        )
        stored = await (await self._b()).declare_queue(queue, policy, replace=True)
        self._policies[queue] = (stored, time.monotonic())
        return stored

    async def queue_policy(self, queue: str) -> QueuePolicy:
        """The stored policy of ``queue``; raises :class:`QueueNotFound`."""
        cached = self._policies.get(queue)
        if cached and time.monotonic() - cached[1] < _POLICY_TTL:
            return cached[0]
        policy = await (await self._b()).get_policy(queue)
        if policy is None:
            self._policies.pop(queue, None)
            raise QueueNotFound(queue)
        self._policies[queue] = (policy, time.monotonic())
        return policy

    async def _ensure_queue(self, queue: str) -> QueuePolicy:
        cached = self._policies.get(queue)
        if cached and time.monotonic() - cached[1] < _POLICY_TTL:
            return cached[0]
        check_queue_name(queue)
        policy = QueuePolicy(dead_letter=dead_letter_queue_name(queue))
        stored = await (await self._b()).declare_queue(queue, policy, replace=False)
        self._policies[queue] = (stored, time.monotonic())
        return stored

    async def queues(self) -> list[str]:
        """Names of every queue (subscription queues included), sorted."""
        return await (await self._b()).list_queues()

    # -- sending -------------------------------------------------------------------

    def _build(
        self,
        queue: str,
        body: Any,
        *,
        delay_ms: int,
        headers: Mapping[str, str] | None,
        dedup_key: str | None,
        now: int,
        message_id: str | None = None,
    ) -> Message:
        data, content_type = encode_body(body)
        hdrs = {CONTENT_TYPE: content_type}
        if headers:
            hdrs.update({str(k): str(v) for k, v in headers.items()})
        return Message(
            id=message_id or new_id(),
            queue=queue,
            body=data,
            headers=hdrs,
            enqueued_at=from_ms(now),
            available_at=from_ms(now + delay_ms),
            attempts=0,
            dedup_key=dedup_key,
        )

    async def send(
        self,
        queue: str,
        body: Any,
        *,
        delay: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
        dedup_key: str | None = None,
    ) -> str:
        """Put one message on ``queue``; return its id once it is durable.

        ``delay`` hides it for that many seconds. With ``dedup_key``, a repeat send
        while the first message is known returns the first id and adds nothing.
        """
        msg, window = await self._prepare_one(queue, body, delay, headers, dedup_key)
        [mid] = await self.backend.enqueue(queue, [msg], dedup_window_ms=window)
        return mid

    async def _prepare_one(
        self,
        queue: str,
        body: Any,
        delay: float | timedelta | None,
        headers: Mapping[str, str] | None,
        dedup_key: str | None,
    ) -> tuple[Message, int]:
        """The message of one send (the queue created if missing) and the queue's
        dedup window in milliseconds."""
        policy = await self._ensure_queue(queue)
        msg = self._build(
            queue,
            body,
            delay_ms=to_ms(delay) or 0,
            headers=headers,
            dedup_key=dedup_key,
            now=now_ms(),
        )
        return msg, round(policy.dedup_window * 1000)

    async def send_many(
        self,
        queue: str,
        bodies: Iterable[Any],
        *,
        delay: float | timedelta | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Put several messages on ``queue`` in one round trip; return their ids."""
        policy = await self._ensure_queue(queue)
        now, delay_ms = now_ms(), to_ms(delay) or 0
        msgs = [
            self._build(
                queue, b, delay_ms=delay_ms, headers=headers, dedup_key=None, now=now
            )
            for b in bodies
        ]
        if not msgs:
            return []
        window = round(policy.dedup_window * 1000)
        return await self.backend.enqueue(queue, msgs, dedup_window_ms=window)

    # -- receiving -----------------------------------------------------------------

    async def receive(
        self,
        queue: str,
        max_messages: int = 1,
        visibility_timeout: float | timedelta | None = None,
        wait: float | timedelta = 0.0,
    ) -> list[Delivery]:
        """Lease up to ``max_messages``; with ``wait``, long-poll that many seconds."""
        if max_messages < 1:
            raise ConfigurationError("max_messages must be >= 1")
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
            await backend.wait(queue, remaining)

    async def ack(self, delivery: Delivery) -> None:
        """Delete the message; raises :class:`LeaseLost` if the lease was lost."""
        lost = await (await self._b()).ack([delivery])
        if lost:
            raise LeaseLost(
                f"lease of message {delivery.id} was lost (it expired and the message "
                "was delivered again, or was already acked): nothing was deleted; "
                "raise the queue's visibility_timeout or call extend() for long work"
            )

    async def ack_many(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Ack several deliveries in one round trip; return the lost leases."""
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
        policy = await self.queue_policy(delivery.queue)
        entry = HistoryEntry(
            at=from_ms(now_ms()),
            consumer=delivery.consumer or self.consumer,
            outcome=outcome,
            error=_error_info(error),
        )
        if delivery.attempts >= policy.max_attempts:
            await self.backend.dead_letter(delivery, outcome, entry)
            return True
        delay_s = to_seconds(delay)
        if delay_s is None:
            delay_s = policy.backoff.delay(delivery.attempts)
        await self.backend.retry(delivery, round(max(delay_s, 0.0) * 1000), entry)
        return False

    async def reject(
        self,
        delivery: Delivery,
        error: BaseException | ErrorInfo | str | None = "rejected",
        *,
        reason: str = "rejected",
    ) -> None:
        """Move the message to the dead letter queue at once (poison message)."""
        entry = HistoryEntry(
            at=from_ms(now_ms()),
            consumer=delivery.consumer or self.consumer,
            outcome=reason,
            error=_error_info(error),
        )
        await (await self._b()).dead_letter(delivery, reason, entry)

    async def extend(self, delivery: Delivery, seconds: float | timedelta) -> Delivery:
        """Lease the message for ``seconds`` more from now; return the new delivery."""
        lease_ms = to_ms(seconds) or 0
        return await (await self._b()).extend(delivery, lease_ms)

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give messages back at once without counting the attempt (shutdown)."""
        if deliveries:
            await (await self._b()).release(deliveries)

    # -- inspection ----------------------------------------------------------------

    @overload
    async def stats(self, queue: None = None) -> dict[str, QueueStats]: ...
    @overload
    async def stats(self, queue: str) -> QueueStats: ...

    async def stats(
        self, queue: str | None = None
    ) -> dict[str, QueueStats] | QueueStats:
        """Depths of one queue, or of every queue as a dict by name."""
        backend = await self._b()
        if queue is not None:
            await self.queue_policy(queue)
            [st] = await backend.stats([queue])
            return st
        names = await backend.list_queues()
        return {s.queue: s for s in await backend.stats(names)}

    async def peek(self, queue: str, limit: int = 10) -> list[Message]:
        """Look at up to ``limit`` messages without leasing them."""
        await self.queue_policy(queue)
        return await self.backend.peek(queue, limit)

    async def dead_letters(
        self,
        queue: str,
        limit: int = 50,
        reason: str | None = None,
        error_contains: str | None = None,
    ) -> list[DeadLetter]:
        """Dead letters of ``queue``, oldest first, filtered by reason or error text."""
        await self.queue_policy(queue)
        return await self.backend.dead_letters(
            queue, limit=limit, reason=reason, error_contains=error_contains
        )

    async def dead_letter(self, queue: str, message_id: str) -> DeadLetter:
        """One dead letter of ``queue`` by message id."""
        await self.queue_policy(queue)
        found = await self.backend.dead_letters(queue, limit=1, ids=[message_id])
        if not found:
            raise DeadLetterNotFound(
                f"no dead letter {message_id!r} on queue {queue!r}: "
                f"`postroom dlq list {queue}` lists them"
            )
        return found[0]

    async def redrive(
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
        """Move dead letters of ``queue`` back to it (or to ``to``); return their ids.

        ``rate`` caps messages per second; ``dry_run`` returns what would move. Each
        batch moves atomically, so an interruption loses nothing.
        """
        await self.queue_policy(queue)
        if isinstance(ids, str):
            ids = [ids]
        if ids is not None and not all(isinstance(i, str) for i in ids):
            raise ConfigurationError(
                "redrive ids must be message id strings, e.g. "
                "[dl.id for dl in client.dead_letters(queue)]"
            )
        if rate is not None and rate <= 0:
            raise ConfigurationError("rate must be > 0 messages per second")
        target = to or queue
        if dry_run:
            found = await self.backend.dead_letters(
                queue, limit=limit if limit is not None else 2**31, ids=ids
            )
            return [d.id for d in found]
        await self._ensure_queue(target)
        moved: list[str] = []
        remaining_ids = list(ids) if ids is not None else None
        batch = max(1, min(_REDRIVE_BATCH, int(rate))) if rate else _REDRIVE_BATCH
        started = time.monotonic()
        while limit is None or len(moved) < limit:
            n = batch if limit is None else min(batch, limit - len(moved))
            chunk = remaining_ids[:n] if remaining_ids is not None else None
            step = await self.backend.redrive(queue, ids=chunk, to=target, limit=n)
            if remaining_ids is not None:
                remaining_ids = remaining_ids[n:]
            moved.extend(step)
            if on_progress is not None and step:
                on_progress(len(step))
            if (remaining_ids is not None and not remaining_ids) or (
                remaining_ids is None and len(step) < n
            ):
                break
            if rate:
                ahead = len(moved) / rate - (time.monotonic() - started)
                if ahead > 0:
                    await anyio.sleep(ahead)
        return moved

    async def purge(self, queue: str, dead: bool = False) -> int:
        """Delete every message of ``queue`` (or its dead letters); return how many."""
        await self.queue_policy(queue)
        return await self.backend.purge(queue, dead=dead)

    # -- topics --------------------------------------------------------------------

    async def publish(
        self, topic: str, body: Any, headers: Mapping[str, str] | None = None
    ) -> str:
        """Copy an event into every matching subscription of ``topic``; return its id.

        Every copy has the same id. Publishing to a topic without subscriptions is
        counted (see :meth:`topics`), not an error.
        """
        check_queue_name(topic)
        backend = await self._b()
        subs = await backend.list_subscriptions(topic)
        now = now_ms()
        event_id = new_id()
        headers = {**(headers or {}), "postroom-topic": topic}
        event = self._build(
            topic,
            body,
            delay_ms=0,
            headers=headers,
            dedup_key=None,
            now=now,
            message_id=event_id,
        )
        copies = [
            replace(event, queue=sub.queue)
            for sub in subs
            if sub.matches(event.headers)
        ]
        await backend.fan_out(topic, copies)
        return event_id

    async def create_subscription(
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
        """Create a durable subscription of ``topic`` (idempotent by name).

        The ``secret`` (which signs push deliveries) is generated when not given.
        When the subscription exists it is returned as it is: its queue's policy,
        possibly tuned since with :meth:`declare_queue`, is left alone (delete and
        create again to change its endpoint or filter).
        """
        from ..model.signing import validate_endpoint

        check_queue_name(topic)
        check_queue_name(name)
        if push_endpoint is not None:
            validate_endpoint(push_endpoint)
        # Every subscription gets a secret, so one made for pulling can be turned
        # into a push subscription without a new secret to distribute.
        secret = secret or secrets.token_urlsafe(32)
        queue = subscription_queue_name(topic, name)
        policy = QueuePolicy(
            max_attempts=max_attempts,
            visibility_timeout=to_seconds(visibility_timeout) or 30.0,
            backoff=backoff or Backoff(),
            dead_letter=dead_letter_queue_name(queue),
        )
        backend = await self._b()
        for existing in await backend.list_subscriptions(topic):
            if existing.name == name:
                await backend.declare_queue(queue, policy, replace=False)
                return existing
        await backend.declare_queue(queue, policy, replace=True)
        self._policies.pop(queue, None)
        sub = Subscription(
            topic=topic,
            name=name,
            queue=queue,
            push_endpoint=push_endpoint,
            secret=secret,
            filter=dict(filter) if filter else None,
            max_attempts=max_attempts,
            created_at=from_ms(now_ms()),
        )
        return await self.backend.put_subscription(sub)

    async def subscriptions(self, topic: str | None = None) -> list[Subscription]:
        """Subscriptions of ``topic``, or all of them."""
        return await (await self._b()).list_subscriptions(topic)

    async def subscription(self, topic: str, name: str) -> Subscription:
        """One subscription; raises :class:`SubscriptionNotFound`."""
        for sub in await (await self._b()).list_subscriptions(topic):
            if sub.name == name:
                return sub
        raise SubscriptionNotFound(topic, name)

    async def delete_subscription(self, topic: str, name: str) -> None:
        """Delete a subscription and its queue."""
        if not await (await self._b()).delete_subscription(topic, name):
            raise SubscriptionNotFound(topic, name)
        self._policies.pop(subscription_queue_name(topic, name), None)

    async def topics(self) -> list[TopicInfo]:
        """Every topic with its subscription count and publish counters."""
        return await (await self._b()).list_topics()
