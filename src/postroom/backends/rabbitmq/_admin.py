"""The RabbitMQ backend's reading and admin operations: stats, peek, purge,
counters, durations, dead letters, redrive and topics."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from ...model.errors import QueueNotFound
from ...model.message import (
    DeadLetter,
    Message,
    QueuePolicy,
    QueueStats,
    Subscription,
    now_ms,
    to_ms_dt,
)
from ...model.queries import DeadLetterQuery
from ...model.stats import COUNTERS, DurationHistogram, TopicInfo, duration_cells
from ._leasing import unpack
from ._ordering import OrderCore
from ._records import Unpacked, redriven, unpack_message
from ._translate import translated

__all__ = ["AdminMixin"]

# Counts of a queue taken again at most (pushes stop once the window is full).
_RECOUNTS = 8


class AdminMixin(OrderCore):
    """Reading and admin operations (mixed into :class:`RabbitBackend`)."""

    # -- depths --------------------------------------------------------------------

    @translated
    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        for name in queues:
            await self._policy(name)
        await self._expire_local()
        depths = [await self._depths(name) for name in queues]
        # After the depths: a claim's gauge is published before its message
        # leaves the queue, so the message is counted somewhere.
        await self.streams.sync(meta=False)
        now = now_ms()
        out: list[QueueStats] = []
        for name, (ready, delayed) in zip(queues, depths, strict=True):
            ready += self.state.pushed(name, now, besides=self.instance)
            others, oldest = self.state.in_flight(name, now, besides=self.instance)
            o_ready, o_delayed, o_leased, o_oldest = self._ordered_depths(name, now)
            ready, delayed, others = (
                ready + o_ready,
                delayed + o_delayed,
                others + o_leased,
            )
            oldest = (
                min(oldest, o_oldest) if oldest and o_oldest else oldest or o_oldest
            )
            mine = [
                lease.delivery
                for lease in self._leases.values()
                if lease.delivery.queue == name
            ]
            for d in mine:
                enq = to_ms_dt(d.message.enqueued_at)
                oldest = min(oldest, enq) if oldest else enq
            age = None if not oldest else max(0.0, (now - oldest) / 1000)
            dead = len(self.state.dead.get(name, {}))
            out.append(QueueStats(name, ready, delayed, others + len(mine), dead, age))
        return out

    async def _depths(self, queue: str) -> tuple[int, int]:
        """Ready messages (with those pushed to this process and not claimed
        yet) and delayed ones."""
        async with self._moving:
            ready = await self._ready_depth(queue)
        delayed = 0
        for bucket in sorted(self.state.buckets.get(queue, ())):
            q = await self._delay(queue, bucket)
            delayed += (await q.declare()).message_count or 0
        return ready, delayed

    async def _ready_depth(self, queue: str) -> int:
        """The queue's ready count plus this process's buffer, counted again
        while a push arrived meanwhile: such a message may be in both (ready
        when counted, then pushed). The barrier makes every push made before
        the count arrive before the buffer is read."""
        lane, ready = self._lanes.get(queue), 0
        for _ in range(_RECOUNTS):
            before = lane.arrivals if lane is not None else 0
            declared = await (await self._ready(queue)).declare()
            if lane is None or lane.closed:
                return declared.message_count or 0
            await lane.barrier()
            ready = (declared.message_count or 0) + len(lane.buffer)
            if lane.arrivals == before:
                break
        return ready

    @translated
    async def peek(self, queue: str, limit: int) -> list[Message]:
        policy = await self._policy(queue)
        await self.streams.sync(meta=False)
        held = self.state.leased(queue, now_ms(), besides=self.instance)
        held += [
            lease.delivery.message
            for lease in self._leases.values()
            if lease.delivery.queue == queue
        ]
        for t in self._buffered(queue):
            got = unpack(queue, t)
            attempts = got.message.attempts + got.returns
            held.append(replace(got.message, attempts=attempts))
        found = [*held, *self._ordered_messages(queue)]
        sources = [await self._ready(queue)] + [
            await self._delay(queue, b)
            for b in sorted(self.state.buckets.get(queue, ()))
        ]
        for source in sources:
            if len(found) >= limit:
                break
            found += await self._peek_from(source, queue, policy, limit - len(found))
        return sorted(found, key=lambda m: m.id)[:limit]

    async def _peek_from(
        self, source: AbstractQueue, queue: str, policy: QueuePolicy, limit: int
    ) -> list[Message]:
        """Messages of a ready or delay queue, read by taking them and publishing
        a copy (AMQP has no look without taking): ready ones go to the back of
        the queue, delayed ones to the delay queue of the time they have left."""
        taken: list[tuple[AbstractIncomingMessage, Unpacked]] = []
        try:
            while len(taken) < limit:
                incoming = await source.get(no_ack=False, fail=False)
                if incoming is None:
                    break
                got = await self._resolve(
                    queue,
                    policy,
                    unpack_message(
                        queue,
                        str(incoming.message_id),
                        incoming.headers or {},
                        incoming.body,
                    ),
                    incoming.ack,
                )
                if got is not None:
                    taken.append((incoming, got))
            await asyncio.gather(
                *(
                    self._publish(
                        g.message, attempts=g.message.attempts, history=g.history
                    )
                    for _, g in taken
                )
            )
        except BaseException:
            for incoming, _ in taken:
                await incoming.nack(requeue=True)
            raise
        for incoming, _ in taken:
            await incoming.ack()
        return [g.message for _, g in taken]

    @translated
    async def purge(self, queue: str, *, dead: bool) -> int:
        await self._policy(queue)
        if dead:
            await self.streams.sync()
            ids = list(self.state.dead.get(queue, {}))
            if ids:
                rec = {"t": "undead", "q": queue, "ids": ids}
                await self.streams.append(self.names.meta, rec, applied=True)
            return len(ids)
        count = await self._purge_ordered(queue)
        names = [self._ready(queue)] + [
            self._delay(queue, b) for b in sorted(self.state.buckets.get(queue, ()))
        ]
        for pending in names:
            purged = await (await pending).purge()
            count += (purged.message_count or 0) if purged else 0
        # Messages this process holds go too (a later ack raises LeaseLost);
        # another process's leased messages cannot be reached from here.
        for token, lease in list(self._leases.items()):
            if lease.delivery.queue == queue:
                del self._leases[token]
                await lease.taken.ack()
                count += 1
        lane = self._lanes.get(queue)
        if lane is not None:
            pushed = lane.take(len(lane.buffer))
            await lane.ack(t.tag for t in pushed)
            count += len(pushed)
        return count

    @translated
    async def delete_queue(self, queue: str) -> bool:
        """Forget the queue in the meta stream, then delete its AMQP queues. Leases
        held by this process end; another process's ack of a message it leased
        from the deleted queue succeeds silently (docs/backends/rabbitmq.md)."""
        await self.streams.sync()
        if queue not in self.state.policies:
            return False
        buckets = sorted(self.state.buckets.get(queue, ()))
        rec = {"t": "drop", "q": queue, "at": now_ms()}
        await self.streams.append(self.names.meta, rec, applied=True)
        for token, lease in list(self._leases.items()):
            if lease.delivery.queue == queue:
                del self._leases[token]
        lane = self._lanes.pop(queue, None)
        if lane is not None and not lane.closed:
            await lane.channel.close()
        await self._delete_amqp(queue, buckets)
        return True

    async def _delete_amqp(self, queue: str, buckets: Sequence[int]) -> None:
        names = [self.names.ready(queue)]
        names += [self.names.delay(queue, b) for b in buckets]
        for name in names:
            self._queues.pop(name, None)
            await self._channel().queue_delete(name)

    @translated
    async def counters(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        for name in queues:
            await self._policy(name)
        await self._flush()
        await self.streams.sync()
        return {
            name: {**dict.fromkeys(COUNTERS, 0), **self.state.counters.get(name, {})}
            for name in queues
        }

    @translated
    async def record_durations(
        self, queue: str, observations: Mapping[str, int], count: int, sum_ms: int
    ) -> None:
        cells = duration_cells(observations, count, sum_ms)
        if cells:
            rec = {"t": "dur", "q": queue, "c": cells}
            await self.streams.append(self.names.meta, rec, applied=True)

    @translated
    async def durations(self, queues: Sequence[str]) -> dict[str, DurationHistogram]:
        await self.streams.sync()
        return {
            name: DurationHistogram.from_cells(self.state.durations.get(name, {}))
            for name in queues
        }

    # -- dead letters --------------------------------------------------------------

    @translated
    async def dead_letters(
        self, queue: str, query: DeadLetterQuery
    ) -> list[DeadLetter]:
        await self._policy(queue)
        await self._expire_local()
        await self.streams.sync()
        wanted = set(query.ids) if query.ids is not None else None
        letters = list(self.state.dead.get(queue, {}).values())
        return query.select(dl for dl in letters if wanted is None or dl.id in wanted)

    @translated
    async def redrive(
        self, queue: str, *, ids: Sequence[str] | None, to: str, limit: int
    ) -> list[str]:
        """Publish each chosen dead letter on ``to`` (confirmed), then remove
        them from the dead letters: interrupted between the two, a message is
        in both places (at least once, never lost)."""
        await self._policy(queue)
        if to != queue:
            await self._policy(to)
        await self.streams.sync()
        held = self.state.dead.get(queue, {})
        chosen = [
            held[i] for i in (ids if ids is not None else list(held)) if i in held
        ]
        chosen = chosen[:limit]
        if not chosen:
            return []
        now = now_ms()
        await asyncio.gather(
            *(
                self._publish(redriven(dl, to, now), attempts=0, history=[])
                for dl in chosen
            )
        )
        moved = [dl.id for dl in chosen]
        rec = {"t": "undead", "q": queue, "ids": moved, "redriven": True}
        await self.streams.append(self.names.meta, rec, applied=True)
        return moved

    # -- topics --------------------------------------------------------------------

    @translated
    async def put_subscription(self, subscription: Subscription) -> Subscription:
        await self.streams.sync()
        key = (subscription.topic, subscription.name)
        existing = self.state.subscriptions.get(key)
        if existing is not None:
            return existing
        rec: dict[str, Any] = {"t": "sub", "s": subscription.to_dict()}
        await self.streams.append(self.names.meta, rec, applied=True)
        stored: Subscription = self.state.subscriptions[key]
        return stored

    @translated
    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        await self.streams.sync()
        return [
            s
            for (t, _), s in sorted(self.state.subscriptions.items())
            if topic is None or t == topic
        ]

    @translated
    async def delete_subscription(self, topic: str, name: str) -> bool:
        await self.streams.sync()
        sub = self.state.subscriptions.get((topic, name))
        if sub is None:
            return False
        buckets = sorted(self.state.buckets.get(sub.queue, ()))
        await self.streams.append(
            self.names.meta, {"t": "unsub", "topic": topic, "name": name}
        )
        rec = {"t": "drop", "q": sub.queue, "at": now_ms()}
        await self.streams.append(self.names.meta, rec, applied=True)
        await self._delete_amqp(sub.queue, buckets)
        return True

    @translated
    async def record_publish(self, topic: str, copies: int) -> None:
        rec = {"t": "pub", "topic": topic, "copies": copies}
        await self.streams.append(self.names.meta, rec, applied=True)

    async def fan_out(self, topic: str, copies: Sequence[Message]) -> int:
        """Every copy published at once (confirmed together), then counted."""
        live = [c for c in copies if c.queue in self.state.policies]
        await asyncio.gather(
            *(self.enqueue(c.queue, [c], dedup_window_ms=0) for c in live),
            return_exceptions=False,
        )
        await self.record_publish(topic, len(live))
        return len(live)

    @translated
    async def list_topics(self) -> list[TopicInfo]:
        await self.streams.sync()
        subs: dict[str, int] = {}
        for t, _ in self.state.subscriptions:
            subs[t] = subs.get(t, 0) + 1
        return [
            TopicInfo(t, subs.get(t, 0), c[0], c[1])
            for t, c in sorted(self.state.topics.items())
        ]

    # -- worker registry -----------------------------------------------------------

    @translated
    async def put_worker(self, worker_id: str, record: str, expires_ms: int) -> None:
        """A heartbeat record in the live stream (read 30 s back by a process
        that starts: a worker beating less often shows up at its next beat)."""
        rec = {"t": "worker", "id": worker_id, "r": record, "x": expires_ms}
        await self.streams.append(self.names.live, rec)

    @translated
    async def list_workers(self, now_ms: int) -> list[str]:
        await self.streams.sync(meta=False)
        return self.state.live_workers(now_ms)

    @translated
    async def delete_worker(self, worker_id: str) -> None:
        await self.streams.append(self.names.live, {"t": "unworker", "id": worker_id})

    @translated
    async def sweep(self, queue: str) -> None:
        if queue not in self.state.policies:
            raise QueueNotFound(queue)
        await self._expire_local()

    @translated
    async def delete_everything(self) -> None:
        """Delete every queue and stream of this prefix (test teardown)."""
        await self.streams.sync()
        names = [self.names.meta, self.names.dedup, self.names.live]
        for queue in self.state.policies:
            names.append(self.names.ready(queue))
            buckets = self.state.buckets.get(queue, ())
            names += [self.names.delay(queue, b) for b in buckets]
        self._queues.clear()
        for name in names:
            await self._channel().queue_delete(name)
