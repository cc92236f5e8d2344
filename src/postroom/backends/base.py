"""The backend seam: one abstract class that every storage engine implements.

The client, worker, pusher, HTTP server and CLI only ever talk to a :class:`Backend`.
A backend stores queue policies, messages with their leases, dead letters and topic
subscriptions, and makes each operation atomic in the broker's own terms (a SQL
transaction, a Lua script).

Rules every backend follows (the contract suite in ``tests/contract`` checks them):

- ``claim`` leases messages (``attempts += 1``); nothing is deleted before ``ack``.
- Receipts are opaque strings. ``ack``/``retry``/``dead_letter``/``extend`` with a
  receipt whose lease was taken over by another claim raise :class:`LeaseLost` and
  change nothing. Acting on an expired lease that nobody re-claimed is allowed.
- Expired leases are resolved lazily, by ``claim``, ``stats`` and ``dead_letters``:
  a message whose ``attempts >= max_attempts`` (from the stored policy) becomes a dead
  letter with reason ``lease_expired``; any other becomes visible again. Either way a
  history entry with outcome ``lease_expired`` is recorded.
- Times are wall-clock milliseconds (``now_ms()``), shared by every process.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import anyio

from ..model.errors import LeaseLost, NotSupported, QueueNotFound
from ..model.message import (
    DeadLetter,
    Delivery,
    HistoryEntry,
    Message,
    QueuePolicy,
    QueueStats,
    Subscription,
    now_ms,
)
from ..model.queries import DeadLetterQuery
from ..model.settlement import Settlement
from ..model.stats import (
    COUNTERS,
    DURATION_BUCKETS,
    DURATION_LABELS,
    DURATION_TOTALS,
    DurationHistogram,
    TopicInfo,
    duration_cells,
)
from ._kept import KeptRecords
from ._registry import open_backend, register_scheme

__all__ = [
    "COUNTERS",
    "DURATION_BUCKETS",
    "DURATION_LABELS",
    "DURATION_TOTALS",
    "ORDERED",
    "Backend",
    "Capabilities",
    "DeadLetterQuery",
    "DurationHistogram",
    "TopicInfo",
    "duration_cells",
    "open_backend",
    "register_scheme",
]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend does natively; the core adapts to what it lacks."""

    durable: bool = True
    cross_process: bool = True
    native_wakeups: bool = False
    transactional_send: bool = False
    worker_registry: bool = False  # put_worker, list_workers, delete_worker
    samples: bool = False  # put_sample, list_samples
    groups: bool = False  # send(group=...): FIFO message groups
    priorities: bool = False  # send(priority=...)
    rate_limits: bool = False  # declare_queue(rate_limit=...); see rate_limit_wait


# The capabilities of a backend that orders and paces deliveries (SPEC §9).
ORDERED = {"groups": True, "priorities": True, "rate_limits": True}


class Backend(KeptRecords, ABC):
    """Abstract storage and transport of queues, dead letters and subscriptions."""

    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, url: str) -> None:
        self.url = url
        # When each rate-limited queue's next permit is due (ms), as found by the
        # last claim of it through this object: see rate_limit_wait.
        self.permit_due_ms: dict[str, int] = {}

    # -- lifecycle -----------------------------------------------------------------

    async def connect(self) -> None:
        """Open connections and create what the backend needs (idempotent)."""

    async def aclose(self) -> None:
        """Release connections."""

    # -- queues --------------------------------------------------------------------

    @abstractmethod
    async def declare_queue(
        self, queue: str, policy: QueuePolicy, *, replace: bool = True
    ) -> QueuePolicy:
        """Create ``queue`` with ``policy``; return the stored policy.

        With ``replace`` an existing queue's policy is overwritten; without it an
        existing queue keeps its policy (used by ``send`` to an unknown name).
        """

    @abstractmethod
    async def get_policy(self, queue: str) -> QueuePolicy | None:
        """The stored policy of ``queue``, or ``None`` when it does not exist."""

    @abstractmethod
    async def list_queues(self) -> list[str]:
        """Names of every declared queue, sorted."""

    async def delete_queue(self, queue: str) -> bool:
        """Delete ``queue`` with its policy, messages (leased ones included), dead
        letters, dedup keys, counters and handler durations; whether it existed.

        A later ``send`` to the name creates a new, empty queue.
        """
        raise NotSupported(f"{type(self).__name__} cannot delete queues")

    # -- messages ------------------------------------------------------------------

    @abstractmethod
    async def enqueue(
        self, queue: str, messages: Sequence[Message], *, dedup_window_ms: int
    ) -> list[str]:
        """Store ``messages`` (already built, ``available_at`` set) durably.

        Returns one id per message: its own, or for a message whose ``dedup_key`` is
        still known on ``queue`` (message present, or within ``dedup_window_ms`` of
        the first send) the first message's id, and that message is not stored.
        """

    def enqueue_blocking(
        self, queue: str, messages: Sequence[Message], *, dedup_window_ms: int
    ) -> list[str]:
        """:meth:`enqueue`, blocking, from a thread that runs no event loop (the
        sync client's ``send``), where a blocking call of the driver costs less
        than an event loop's round trip. Optional: the default raises
        :class:`NotSupported` and the sync client goes through :meth:`enqueue`.
        """
        raise NotSupported(f"{type(self).__name__} has no blocking enqueue")

    @abstractmethod
    async def claim(
        self, queue: str, max_messages: int, lease_ms: int, consumer: str
    ) -> list[Delivery]:
        """Lease up to ``max_messages`` visible messages, oldest first."""

    def rate_limit_wait(self, queue: str) -> float:
        """Seconds until the rate limit of ``queue`` grants its next delivery, as
        the last :meth:`claim` of it found (``0.0``: not held back).

        A backend with ``capabilities.rate_limits`` sets ``permit_due_ms[queue]``
        in each claim of a rate-limited queue; the client sleeps this long instead
        of polling while the limit holds ready messages back.
        """
        due = self.permit_due_ms.get(queue)
        return 0.0 if due is None else max(0.0, (due - now_ms()) / 1000)

    async def wait(self, queue: str, timeout: float) -> None:
        """Block until ``queue`` may have a visible message, or ``timeout`` seconds.

        May return early spuriously. The default sleeps a short poll interval;
        backends with wake-ups (LISTEN/NOTIFY, blocking pops) override it.

        A wait returns nothing. As an internal optimisation a backend may claim in
        the wait's own round trip for the caller's next :meth:`claim` (the Redis
        backend queues its claim script behind the ``BLPOP``, saving a round trip
        per wake-up): such deliveries are leased with the arguments of the
        queue's last claim (count, lease, consumer), handed out only by the next
        ``claim`` with the same arguments, and otherwise (other arguments, a lease
        about to end, :meth:`aclose`) released without counting an attempt.
        """
        await anyio.sleep(min(timeout, 0.05))

    @abstractmethod
    async def ack(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Delete the messages; return the deliveries whose lease was lost."""

    async def settle(self, batch: Settlement) -> tuple[list[Delivery], list[Delivery]]:
        """Record a batch of outcomes, then claim: ``(lost leases, claimed)``.

        The acks, retries and dead letters of ``batch`` (each as :meth:`ack`,
        :meth:`retry` and :meth:`dead_letter` would, their queues in any order),
        then :meth:`claim` with ``batch.claim`` when there is one. A worker's
        steady state, in one round trip (one transaction where the backend has
        them). A delivery whose lease was lost is returned and nothing is done
        for it. The writes count even when the claim fails (its error, e.g.
        :class:`QueueNotFound`, is raised).

        The default composes the per-message methods; backends override it.
        """
        lost = await self.ack(batch.acks) if batch.acks else []
        for rerun in batch.reruns:
            try:
                await self.retry(rerun.delivery, rerun.delay_ms, rerun.entry)
            except LeaseLost:
                lost.append(rerun.delivery)
        for burial in batch.burials:
            try:
                await self.dead_letter(burial.delivery, burial.reason, burial.entry)
            except LeaseLost:
                lost.append(burial.delivery)
        c = batch.claim
        if c is None:
            return lost, []
        return lost, await self.claim(c.queue, c.max_messages, c.lease_ms, c.consumer)

    @abstractmethod
    async def retry(
        self, delivery: Delivery, delay_ms: int, entry: HistoryEntry
    ) -> None:
        """Make the message visible after ``delay_ms``, recording ``entry``."""

    @abstractmethod
    async def dead_letter(
        self, delivery: Delivery, reason: str, entry: HistoryEntry
    ) -> None:
        """Move the message to its queue's dead letters, recording ``entry``."""

    @abstractmethod
    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Make messages visible at once without counting the attempt (shutdown).

        Deliveries whose lease was lost are skipped silently.
        """

    @abstractmethod
    async def extend(self, delivery: Delivery, lease_ms: int) -> Delivery:
        """Set the lease to expire ``lease_ms`` from now; return the new delivery."""

    @abstractmethod
    async def peek(self, queue: str, limit: int) -> list[Message]:
        """Messages of ``queue`` (any state but dead), oldest first, untouched."""

    @abstractmethod
    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Depths of the named queues, in the same order."""

    @abstractmethod
    async def purge(self, queue: str, *, dead: bool) -> int:
        """Delete every message of ``queue`` (or its dead letters); return the count."""

    @abstractmethod
    async def counters(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        """Lifetime counters of the named queues, kept in the backend so that every
        process's work counts: ``sent``, ``acked``, ``retried``, ``dead_lettered``
        and ``redriven`` (counted on the source queue)."""

    # -- dead letters --------------------------------------------------------------

    @abstractmethod
    async def dead_letters(
        self, queue: str, query: DeadLetterQuery
    ) -> list[DeadLetter]:
        """Dead letters whose source is ``queue``, oldest death first, as
        ``query`` asks (:meth:`DeadLetterQuery.matches` is the filter)."""

    @abstractmethod
    async def redrive(
        self, queue: str, *, ids: Sequence[str] | None, to: str, limit: int
    ) -> list[str]:
        """Atomically move up to ``limit`` dead letters of ``queue`` onto ``to``.

        The messages keep id, body and headers, get ``attempts = 0`` and
        ``redrives + 1``, and are visible at once. Returns the moved ids.
        """

    # -- topics --------------------------------------------------------------------

    @abstractmethod
    async def put_subscription(self, subscription: Subscription) -> Subscription:
        """Store a subscription; an existing one of that name is returned unchanged."""

    @abstractmethod
    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        """Subscriptions of ``topic`` (or of every topic), sorted by topic and name."""

    @abstractmethod
    async def delete_subscription(self, topic: str, name: str) -> bool:
        """Delete a subscription (and its queue's messages); whether it existed."""

    @abstractmethod
    async def record_publish(self, topic: str, copies: int) -> None:
        """Count one publish to ``topic`` that was copied into ``copies`` queues."""

    async def fan_out(self, topic: str, copies: Sequence[Message]) -> int:
        """Store one publish: each copy on its own queue (``copy.queue``), then
        count it with :meth:`record_publish`. Copies whose queue no longer exists
        (a subscription deleted meanwhile) are skipped. Returns the copies stored.

        The default makes one round trip per copy; backends that can store them
        all in one transaction override it, which also makes the publish atomic.
        """
        stored = 0
        for copy in copies:
            try:
                await self.enqueue(copy.queue, [copy], dedup_window_ms=0)
            except QueueNotFound:
                continue
            stored += 1
        await self.record_publish(topic, stored)
        return stored

    @abstractmethod
    async def list_topics(self) -> list[TopicInfo]:
        """Every topic that has subscriptions or was published to, sorted."""

    # -- optional ------------------------------------------------------------------

    async def sweep(self, queue: str) -> None:
        """Resolve expired leases of ``queue`` now (normally done lazily)."""
        raise NotSupported(f"{type(self).__name__} has no explicit sweep")

    async def record_durations(
        self, queue: str, observations: Mapping[str, int], count: int, sum_ms: int
    ) -> None:
        """Add a batch of handler durations of ``queue`` to its histogram.

        ``observations`` maps bucket labels (:data:`DURATION_LABELS`) to how many
        of the ``count`` durations fit in that bucket (cumulative: a duration
        counts in its bucket and every larger one); ``sum_ms`` is their sum. One
        atomic increment of every cell (see :func:`duration_cells`); the queue
        need not exist.
        """
        raise NotSupported(f"{type(self).__name__} does not keep handler durations")

    async def durations(self, queues: Sequence[str]) -> dict[str, DurationHistogram]:
        """The handler duration histogram of each named queue (zeros when none
        was recorded), summed over every process that recorded."""
        raise NotSupported(f"{type(self).__name__} does not keep handler durations")

    async def enqueue_in_transaction(
        self,
        conn: Any,
        queue: str,
        messages: Sequence[Message],
        *,
        dedup_window_ms: int,
    ) -> list[str]:
        """:meth:`enqueue` through the caller's own connection ``conn``, inside the
        transaction open on it: the messages exist once it commits. Backends that
        declare ``capabilities.transactional_send`` implement it."""
        raise NotSupported(
            f"{type(self).__name__} cannot send inside your transaction: "
            "use send() (postgresql:// can)"
        )
