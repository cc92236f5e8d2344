"""``memory://``: an honest in-process backend with the full delivery contract.

State lives in the process (shared by every client that opens the same URL, e.g.
``memory://`` or ``memory://tests-1``) and is lost when it exits. Use it for unit
tests of code that uses postroom.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from ..model.errors import LeaseLost
from ..model.message import (
    Delivery,
    HistoryEntry,
    Message,
    from_ms,
    now_ms,
)
from . import _memory_order as order
from ._common import (
    lease_lost,
    make_receipt,
    new_token,
    parse_receipt,
)
from ._memory_base import MemoryBase
from ._memory_state import QueueState, Record
from .base import ORDERED, Capabilities

__all__ = ["MemoryBackend"]


class MemoryBackend(MemoryBase):
    """In-process backend; same contract as the durable ones, no durability."""

    capabilities = Capabilities(
        durable=False,
        cross_process=False,
        native_wakeups=True,
        worker_registry=True,
        samples=True,
        **ORDERED,
    )

    # -- messages ------------------------------------------------------------------

    async def enqueue(
        self, queue: str, messages: Sequence[Message], *, dedup_window_ms: int
    ) -> list[str]:
        now = now_ms()
        ids: list[str] = []
        with self._s.lock:
            q = self._q(queue)
            for m in messages:
                if m.dedup_key is not None:
                    known = q.dedup.get(m.dedup_key)
                    if known and (known[1] > now or known[0] in q.messages):
                        ids.append(known[0])
                        continue
                    q.dedup[m.dedup_key] = (m.id, now + dedup_window_ms)
                if m.id in q.messages:  # a retried send: stored once
                    ids.append(m.id)
                    continue
                available = int(m.available_at.timestamp() * 1000)
                q.messages[m.id] = Record(m, available)
                order.note(q, m)
                q.counters["sent"] += 1
                ids.append(m.id)
        self._wake()
        return ids

    async def claim(
        self, queue: str, max_messages: int, lease_ms: int, consumer: str
    ) -> list[Delivery]:
        now = now_ms()
        out: list[Delivery] = []
        with self._s.lock:
            q = self._q(queue)
            self._expire(q, now)
            picked, due = order.pick(q, now, max_messages)
            if q.policy.rate_limit is not None:
                self.permit_due_ms[queue] = due
            for rec in picked:
                rec.token = new_token()
                rec.lease_ms = now + lease_ms
                rec.consumer = consumer
                rec.message = replace(rec.message, attempts=rec.message.attempts + 1)
                out.append(
                    Delivery(
                        rec.message,
                        make_receipt(rec.message.id, rec.token),
                        from_ms(rec.lease_ms),
                        consumer,
                    )
                )
        return out

    def _next_due(self, queue: str) -> int | None:
        q = self._s.queues.get(queue)
        return None if q is None else order.next_due(q)

    async def wait(self, queue: str, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        key = (loop, event)
        with self._s.lock:
            due = self._next_due(queue)
            self._s.waiters.add(key)
        if due is not None:
            timeout = max(0.0, min(timeout, (due - now_ms()) / 1000))
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._s.lock:
                self._s.waiters.discard(key)

    def _held(self, q: QueueState, delivery: Delivery) -> Record:
        mid, token = parse_receipt(delivery.receipt)
        rec = q.messages.get(mid)
        if rec is None or rec.token != token:
            raise lease_lost(mid)
        return rec

    async def ack(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        lost: list[Delivery] = []
        grouped = False
        with self._s.lock:
            for d in deliveries:
                q = self._s.queues.get(d.queue)
                try:
                    if q is None:
                        raise LeaseLost(d.id)
                    rec = self._held(q, d)
                except LeaseLost:
                    lost.append(d)
                    continue
                del q.messages[rec.message.id]
                q.counters["acked"] += 1
                grouped = grouped or rec.message.group is not None
        if grouped:  # the next message of the group may be claimed now
            self._wake()
        return lost

    def _attempt_ended(
        self, delivery: Delivery, entry: HistoryEntry
    ) -> tuple[QueueState, Record]:
        """The queue and the held record of ``delivery``, with ``entry`` added to
        its history (called under the lock)."""
        q = self._q(delivery.queue)
        rec = self._held(q, delivery)
        rec.history.append(entry)
        return q, rec

    async def retry(
        self, delivery: Delivery, delay_ms: int, entry: HistoryEntry
    ) -> None:
        with self._s.lock:
            q, rec = self._attempt_ended(delivery, entry)
            q.counters["retried"] += 1
            rec.token = None
            rec.available_ms = now_ms() + delay_ms
        self._wake()

    async def dead_letter(
        self, delivery: Delivery, reason: str, entry: HistoryEntry
    ) -> None:
        with self._s.lock:
            q, rec = self._attempt_ended(delivery, entry)
            self._bury(q, rec, reason, now_ms())
        self._wake()

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        now = now_ms()
        with self._s.lock:
            for d in deliveries:
                q = self._s.queues.get(d.queue)
                try:
                    rec = self._held(q, d) if q else None
                except LeaseLost:
                    continue
                if rec is None:
                    continue
                rec.token, rec.available_ms = None, now
                rec.message = replace(
                    rec.message, attempts=max(0, rec.message.attempts - 1)
                )
        self._wake()

    async def extend(self, delivery: Delivery, lease_ms: int) -> Delivery:
        with self._s.lock:
            rec = self._held(self._q(delivery.queue), delivery)
            rec.lease_ms = now_ms() + lease_ms
            return replace(delivery, lease_expires_at=from_ms(rec.lease_ms))
