"""The in-process backend's state handling off the send/lease path: queues,
inspection, the worker registry, dead letters and topics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from ..model.errors import QueueNotFound
from ..model.message import (
    DeadLetter,
    Message,
    QueuePolicy,
    QueueStats,
    Subscription,
    from_ms,
    now_ms,
)
from ..model.queries import DeadLetterQuery
from ..model.stats import DurationHistogram, TopicInfo, duration_cells
from ._common import lease_expired_entry
from ._memory_order import note
from ._memory_state import QueueState, Record, store_for
from .base import Backend

__all__ = ["MemoryBase"]


class MemoryBase(Backend):
    """What :class:`~postroom.backends.memory.MemoryBackend` builds on."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._s = store_for(url)

    def _q(self, queue: str) -> QueueState:
        try:
            return self._s.queues[queue]
        except KeyError:
            raise QueueNotFound(queue) from None

    def _wake(self) -> None:
        for loop, event in list(self._s.waiters):
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # loop closed
                self._s.waiters.discard((loop, event))

    # -- queues --------------------------------------------------------------------

    async def declare_queue(
        self, queue: str, policy: QueuePolicy, *, replace: bool = True
    ) -> QueuePolicy:
        with self._s.lock:
            q = self._s.queues.get(queue)
            if q is None:
                self._s.queues[queue] = QueueState(policy)
                return policy
            if replace:
                q.policy = policy
            return q.policy

    async def get_policy(self, queue: str) -> QueuePolicy | None:
        q = self._s.queues.get(queue)
        return q.policy if q else None

    async def list_queues(self) -> list[str]:
        return sorted(self._s.queues)

    async def delete_queue(self, queue: str) -> bool:
        with self._s.lock:
            self._s.durations.pop(queue, None)
            return self._s.queues.pop(queue, None) is not None

    def _expire(self, q: QueueState, now: int) -> None:
        for rec in list(q.messages.values()):
            if rec.token is None or rec.lease_ms > now:
                continue
            rec.history.append(lease_expired_entry(now, rec.consumer))
            if rec.message.attempts >= q.policy.max_attempts:
                self._bury(q, rec, "lease_expired", now)
            else:
                rec.token, rec.available_ms = None, now

    def _bury(self, q: QueueState, rec: Record, reason: str, now: int) -> None:
        del q.messages[rec.message.id]
        q.counters["dead_lettered"] += 1
        last = rec.history[-1].error if rec.history else None
        q.dead[rec.message.id] = DeadLetter(
            message=rec.message,
            queue=rec.message.queue,
            reason=reason,
            error=last,
            history=list(rec.history),
            attempts=rec.message.attempts,
            dead_at=from_ms(now),
        )

    # -- inspection ----------------------------------------------------------------

    async def peek(self, queue: str, limit: int) -> list[Message]:
        with self._s.lock:
            return [r.message for r in list(self._q(queue).messages.values())[:limit]]

    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        now = now_ms()
        out = []
        with self._s.lock:
            for name in queues:
                q = self._q(name)
                self._expire(q, now)
                ready = delayed = in_flight = 0
                oldest: int | None = None
                for r in q.messages.values():
                    if r.token is not None:
                        in_flight += 1
                    elif r.available_ms > now:
                        delayed += 1
                    else:
                        ready += 1
                    enq = int(r.message.enqueued_at.timestamp() * 1000)
                    oldest = enq if oldest is None else min(oldest, enq)
                age = None if oldest is None else max(0.0, (now - oldest) / 1000)
                out.append(
                    QueueStats(name, ready, delayed, in_flight, len(q.dead), age)
                )
        return out

    async def purge(self, queue: str, *, dead: bool) -> int:
        with self._s.lock:
            q = self._q(queue)
            target = q.dead if dead else q.messages
            n = len(target)
            target.clear()
            return n

    async def counters(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        with self._s.lock:
            return {name: dict(self._q(name).counters) for name in queues}

    async def record_durations(
        self, queue: str, observations: Mapping[str, int], count: int, sum_ms: int
    ) -> None:
        cells = duration_cells(observations, count, sum_ms)
        with self._s.lock:
            held = self._s.durations.setdefault(queue, {})
            for name, n in cells.items():
                held[name] = held.get(name, 0) + n

    async def durations(self, queues: Sequence[str]) -> dict[str, DurationHistogram]:
        with self._s.lock:
            return {
                name: DurationHistogram.from_cells(self._s.durations.get(name, {}))
                for name in queues
            }

    async def put_worker(self, worker_id: str, record: str, expires_ms: int) -> None:
        with self._s.lock:
            self._s.workers[worker_id] = (record, expires_ms)

    async def list_workers(self, now_ms: int) -> list[str]:
        with self._s.lock:
            workers = self._s.workers
            for wid in [w for w, (_, exp) in workers.items() if exp <= now_ms]:
                del workers[wid]
            return [record for record, _ in workers.values()]

    async def delete_worker(self, worker_id: str) -> None:
        with self._s.lock:
            self._s.workers.pop(worker_id, None)

    async def put_sample(self, bucket_ms: int, record: str, expires_ms: int) -> bool:
        with self._s.lock:
            if bucket_ms in self._s.samples:
                return False
            self._s.samples[bucket_ms] = (record, expires_ms)
            return True

    async def list_samples(self, since_ms: int, now_ms: int) -> list[tuple[int, str]]:
        with self._s.lock:
            kept = {b: v for b, v in self._s.samples.items() if v[1] > now_ms}
            self._s.samples = kept
            return [(b, r) for b, (r, _) in sorted(kept.items()) if b >= since_ms]

    # -- dead letters --------------------------------------------------------------

    async def dead_letters(
        self, queue: str, query: DeadLetterQuery
    ) -> list[DeadLetter]:
        with self._s.lock:
            q = self._q(queue)
            self._expire(q, now_ms())
            wanted = set(query.ids) if query.ids is not None else None
            return query.select(
                dl for dl in q.dead.values() if wanted is None or dl.id in wanted
            )

    async def redrive(
        self, queue: str, *, ids: Sequence[str] | None, to: str, limit: int
    ) -> list[str]:
        now = now_ms()
        moved: list[str] = []
        with self._s.lock:
            src, dst = self._q(queue), self._q(to)
            candidates = list(ids) if ids is not None else list(src.dead)
            for mid in candidates:
                if len(moved) >= limit:
                    break
                dl = src.dead.pop(mid, None)
                if dl is None:
                    continue
                msg = replace(
                    dl.message,
                    queue=to,
                    attempts=0,
                    redrives=dl.message.redrives + 1,
                    available_at=from_ms(now),
                )
                dst.messages[mid] = Record(msg, now)
                note(dst, msg)
                src.counters["redriven"] += 1
                moved.append(mid)
        self._wake()
        return moved

    # -- topics --------------------------------------------------------------------

    async def put_subscription(self, subscription: Subscription) -> Subscription:
        key = (subscription.topic, subscription.name)
        with self._s.lock:
            existing = self._s.subscriptions.get(key)
            if existing is not None:
                return existing
            self._s.subscriptions[key] = subscription
            self._s.topics.setdefault(subscription.topic, [0, 0])
            return subscription

    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        with self._s.lock:
            subs = [
                s
                for (t, _), s in sorted(self._s.subscriptions.items())
                if topic is None or t == topic
            ]
        return subs

    async def delete_subscription(self, topic: str, name: str) -> bool:
        with self._s.lock:
            sub = self._s.subscriptions.pop((topic, name), None)
            if sub is None:
                return False
            self._s.queues.pop(sub.queue, None)
            return True

    async def record_publish(self, topic: str, copies: int) -> None:
        with self._s.lock:
            counts = self._s.topics.setdefault(topic, [0, 0])
            counts[0] += 1
            if copies == 0:
                counts[1] += 1

    async def list_topics(self) -> list[TopicInfo]:
        with self._s.lock:
            subs: dict[str, int] = {}
            for t, _ in self._s.subscriptions:
                subs[t] = subs.get(t, 0) + 1
            return [
                TopicInfo(t, subs.get(t, 0), c[0], c[1])
                for t, c in sorted(self._s.topics.items())
            ]

    async def sweep(self, queue: str) -> None:
        with self._s.lock:
            self._expire(self._q(queue), now_ms())
