"""``sqlite:///path.db``: the embedded default backend.

One file in WAL mode, shared safely by every process on the machine. Claims are
one ``UPDATE ... RETURNING`` inside ``BEGIN IMMEDIATE``; nothing is deleted
before an ack; sends and acks are batched with ``executemany``. The blocking
``sqlite3`` calls run in the backend's own thread, one thread hop per operation,
and operations that queue up meanwhile share one commit (``_executor.py``).
Waiting consumers are woken by this process's sends at once and by other
processes' commits through ``PRAGMA data_version`` (see ``_watch.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from ...model.errors import NotSupported
from ...model.message import (
    DeadLetter,
    Delivery,
    HistoryEntry,
    Message,
    QueuePolicy,
    QueueStats,
    Subscription,
    from_ms,
    now_ms,
)
from ...model.queries import DeadLetterQuery
from ...model.settlement import Settlement
from ...model.stats import DurationHistogram, TopicInfo, duration_cells
from ..base import ORDERED, Backend, Capabilities
from . import _admin, _durations, _inspect, _workers
from ._checkpoint import Checkpointer
from ._conn import SqliteSettings, backend_error, init_schema, open_connection
from ._executor import Executor
from ._store import Store
from ._watch import Watcher, notify

__all__ = ["SqliteBackend"]

T = TypeVar("T")


class SqliteBackend(Backend):
    """Embedded, durable, multi-process backend on one SQLite file."""

    capabilities = Capabilities(
        native_wakeups=True, worker_registry=True, samples=True, **ORDERED
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.settings = SqliteSettings.from_url(url)
        self._store: Store | None = None
        self._watcher = Watcher(self.settings)
        self._executor: Executor | None = None
        self._checkpointer: Checkpointer | None = None

    @property
    def path(self) -> str:
        """The absolute path of the database file."""
        return self.settings.path

    async def _run(
        self, fn: Callable[..., T], *args: object, durable: bool = True
    ) -> T:
        """Run one blocking operation in the backend's thread (see ``_executor``)."""
        if self._executor is None:
            self._executor = Executor(
                f"postroom-sqlite:{self.path}", self.settings.synchronous
            )
            self._checkpointer = Checkpointer(
                self.settings, f"postroom-checkpoint:{self.path}"
            )
            self._executor.after = self._checkpointer.committed
        try:
            return await self._executor.run(fn, *args, durable=durable)
        except sqlite3.Error as exc:
            raise backend_error(exc, self.path) from exc

    def _s(self) -> Store:
        if self._store is None:
            from ...model.errors import BackendError

            raise BackendError(
                f"the SQLite backend for {self.path} is not connected: use the "
                "client as a context manager or call connect() first"
            )
        return self._store

    # -- lifecycle -----------------------------------------------------------------

    def _open(self) -> Store:
        conn = open_connection(self.settings)
        try:
            init_schema(conn, self.path)
            self._watcher.open()
        except BaseException:
            conn.close()
            raise
        assert self._executor is not None
        self._executor.conn = conn
        return Store(conn, self.permit_due_ms)

    async def connect(self) -> None:
        """Open the connections, switch to WAL and create the schema (idempotent)."""
        if self._store is None:
            try:
                self._store = await self._run(self._open)
            except BaseException:
                await self.aclose()
                raise

    async def aclose(self) -> None:
        """Close the connections."""
        store, self._store = self._store, None
        executor, self._executor = self._executor, None
        checkpointer, self._checkpointer = self._checkpointer, None
        self._watcher.close()
        if executor is not None:
            if store is not None:
                executor.conn = None
                await executor.run(store.conn.close)
            if checkpointer is not None:
                await executor.run(checkpointer.close)
            await executor.stop()

    # -- queues --------------------------------------------------------------------

    async def declare_queue(
        self, queue: str, policy: QueuePolicy, *, replace: bool = True
    ) -> QueuePolicy:
        return await self._run(self._s().declare_queue, queue, policy, replace)

    async def get_policy(self, queue: str) -> QueuePolicy | None:
        return await self._run(self._s().get_policy, queue, durable=False)

    async def list_queues(self) -> list[str]:
        return await self._run(self._s().list_queues, durable=False)

    # -- messages ------------------------------------------------------------------

    async def enqueue(
        self, queue: str, messages: Sequence[Message], *, dedup_window_ms: int
    ) -> list[str]:
        ids = await self._run(self._s().enqueue, queue, messages, dedup_window_ms)
        notify(self.path, (queue,))
        return ids

    def enqueue_blocking(
        self, queue: str, messages: Sequence[Message], *, dedup_window_ms: int
    ) -> list[str]:
        """:meth:`enqueue` from the caller's thread: the same operation, in the
        backend's thread, waited for on a plain future instead of an event loop
        (the sync client's send)."""
        store, executor = self._s(), self._executor
        if executor is None:
            raise NotSupported("the SQLite backend is closing: use the event loop")
        try:
            ids = executor.run_blocking(store.enqueue, queue, messages, dedup_window_ms)
        except sqlite3.Error as exc:
            raise backend_error(exc, self.path) from exc
        notify(self.path, (queue,))
        return ids

    async def claim(
        self, queue: str, max_messages: int, lease_ms: int, consumer: str
    ) -> list[Delivery]:
        return await self._run(self._s().claim, queue, max_messages, lease_ms, consumer)

    async def wait(self, queue: str, timeout: float) -> None:
        """Block until ``queue`` may have work (see ``_watch.py``), at most
        ``timeout`` seconds."""
        await self._watcher.wait(queue, timeout)

    async def ack(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        if not deliveries:
            return []
        # An ack lost in a power cut only means a redelivery (at least once): no
        # fsync of its own; the next send, retry or dead letter syncs it.
        lost = await self._run(self._s().ack, deliveries, durable=False)
        self._next_of_groups(deliveries)
        return lost

    def _next_of_groups(self, deliveries: Sequence[Delivery]) -> None:
        """Wake this process's waiters of queues whose group heads just left (the
        next message of each group may be claimed now)."""
        grouped = {d.queue for d in deliveries if d.message.group is not None}
        if grouped:
            notify(self.path, grouped)

    async def settle(self, batch: Settlement) -> tuple[list[Delivery], list[Delivery]]:
        """Every write and the claim in one operation of the backend's thread:
        one transaction (acks alone need no fsync of their own, see ack)."""
        durable = bool(batch.reruns or batch.burials)
        lost, claimed = await self._run(self._s().settle, batch, durable=durable)
        if batch.reruns:
            notify(self.path, {r.delivery.queue for r in batch.reruns})
        self._next_of_groups([*batch.acks, *(b.delivery for b in batch.burials)])
        if isinstance(claimed, Exception):
            raise claimed
        return lost, claimed

    async def retry(
        self, delivery: Delivery, delay_ms: int, entry: HistoryEntry
    ) -> None:
        await self._run(self._s().retry, delivery, delay_ms, entry)
        notify(self.path, (delivery.queue,))

    async def dead_letter(
        self, delivery: Delivery, reason: str, entry: HistoryEntry
    ) -> None:
        await self._run(self._s().dead_letter, delivery, reason, entry)
        self._next_of_groups([delivery])

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        await self._run(self._s().release, deliveries, durable=False)
        notify(self.path, {d.queue for d in deliveries})

    async def extend(self, delivery: Delivery, lease_ms: int) -> Delivery:
        until = await self._run(self._s().extend, delivery, lease_ms, durable=False)
        return replace(delivery, lease_expires_at=from_ms(until))

    async def peek(self, queue: str, limit: int) -> list[Message]:
        return await self._run(_inspect.peek, self._s(), queue, limit, durable=False)

    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        return await self._run(_inspect.stats, self._s(), list(queues), durable=False)

    async def purge(self, queue: str, *, dead: bool) -> int:
        return await self._run(_inspect.purge, self._s(), queue, dead)

    async def counters(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        return await self._run(
            _inspect.counters, self._s(), list(queues), durable=False
        )

    async def record_durations(
        self, queue: str, observations: Mapping[str, int], count: int, sum_ms: int
    ) -> None:
        cells = duration_cells(observations, count, sum_ms)
        await self._run(
            _durations.record_durations, self._s(), queue, cells, durable=False
        )

    async def durations(self, queues: Sequence[str]) -> dict[str, DurationHistogram]:
        return await self._run(
            _durations.durations, self._s(), list(queues), durable=False
        )

    # -- worker registry -------------------------------------------------------------

    async def put_worker(self, worker_id: str, record: str, expires_ms: int) -> None:
        await self._run(
            _workers.put_worker, self._s(), worker_id, record, expires_ms, durable=False
        )

    async def list_workers(self, now_ms: int) -> list[str]:
        return await self._run(_workers.list_workers, self._s(), now_ms, durable=False)

    async def delete_worker(self, worker_id: str) -> None:
        await self._run(_workers.delete_worker, self._s(), worker_id, durable=False)

    async def put_sample(self, bucket_ms: int, record: str, expires_ms: int) -> bool:
        return await self._run(
            _workers.put_sample, self._s(), bucket_ms, record, expires_ms, durable=False
        )

    async def list_samples(self, since_ms: int, now_ms: int) -> list[tuple[int, str]]:
        return await self._run(
            _workers.list_samples, self._s(), since_ms, now_ms, durable=False
        )

    # -- dead letters --------------------------------------------------------------

    async def dead_letters(
        self, queue: str, query: DeadLetterQuery
    ) -> list[DeadLetter]:
        return await self._run(
            _admin.dead_letters, self._s(), queue, query, durable=False
        )

    async def redrive(
        self, queue: str, *, ids: Sequence[str] | None, to: str, limit: int
    ) -> list[str]:
        moved = await self._run(_admin.redrive, self._s(), queue, ids, to, limit)
        if moved:
            notify(self.path, (to,))
        return moved

    # -- topics --------------------------------------------------------------------

    async def put_subscription(self, subscription: Subscription) -> Subscription:
        return await self._run(_admin.put_subscription, self._s(), subscription)

    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        return await self._run(
            _admin.list_subscriptions, self._s(), topic, durable=False
        )

    async def delete_subscription(self, topic: str, name: str) -> bool:
        return await self._run(_admin.delete_subscription, self._s(), topic, name)

    async def delete_queue(self, queue: str) -> bool:
        return await self._run(_admin.delete_queue, self._s(), queue)

    async def record_publish(self, topic: str, copies: int) -> None:
        await self._run(_admin.record_publish, self._s(), topic, copies, durable=False)

    async def fan_out(self, topic: str, copies: Sequence[Message]) -> int:
        stored: int = await self._run(_admin.fan_out, self._s(), topic, copies)
        notify(self.path, tuple({c.queue for c in copies}))
        return stored

    async def list_topics(self) -> list[TopicInfo]:
        return await self._run(_admin.list_topics, self._s(), durable=False)

    async def sweep(self, queue: str) -> None:
        """Resolve expired leases of ``queue`` now."""
        await self._run(self._s().resolve_expired, queue, now_ms(), durable=False)
