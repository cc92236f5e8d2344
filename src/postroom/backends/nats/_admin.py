"""Queues, depths, peeking, purging, counters and durations on JetStream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence

from ...model.errors import QueueNotFound
from ...model.message import Message, QueuePolicy, QueueStats, now_ms
from ..base import COUNTERS, DurationHistogram, duration_cells
from ._conn import translated
from ._core import NatsCore
from ._names import CONSUMER, LEVELS, level_consumer, token, untoken
from ._records import meta_of

__all__ = ["Admin"]


class Admin(NatsCore):
    """Queue declarations and everything that reads or clears a queue whole."""

    async def declare_queue(
        self, queue: str, policy: QueuePolicy, *, replace: bool = True
    ) -> QueuePolicy:
        key = self.policy_key(queue)
        got = await self.meta.get(key)
        lanes = got is not None and bool(got[0].get("p"))
        if got is not None and not replace:
            stored = QueuePolicy.from_dict(got[0]["policy"])
            self.remember(queue, stored)
            self.lanes[queue] = lanes
            return stored
        # Streams first: a stored policy always has its streams.
        await self.create_streams(queue, policy)
        record: dict[str, object] = {"name": queue, "policy": policy.to_dict()}
        if lanes:  # the priority stream's consumers take the new lease too
            await self.create_lanes(queue, policy)
            record["p"] = True
        await self.meta.put(key, record)
        self.remember(queue, policy)
        self.lanes[queue] = lanes
        return policy

    async def list_queues(self) -> list[str]:
        keys = await self.meta.keys("pol.*")
        return sorted(untoken(k.partition(".")[2]) for k in keys)

    async def delete_queue(self, queue: str) -> bool:
        existed = await self.meta.get(self.policy_key(queue)) is not None
        await self.delete_queue_data(queue)
        return existed

    async def delete_queue_data(self, queue: str) -> None:
        """Remove a queue: policy, streams, dedup keys, counters and durations."""
        await self.meta.delete(self.policy_key(queue))
        self.remember(queue, None)
        await self.delete_streams(queue)
        for stream in (self.names.stream(queue), self.names.prio_stream(queue)):
            self.leases.drop_stream(stream)
            await self.jet.unmark(
                self.names.ended_stream, self.names.ended_subject(stream)
            )
        await self.dedup.delete(f"{token(queue)}.>")
        await self.meta.delete(self.group_key(queue))
        await self.meta.delete(self.rate_key(queue))
        self.forget_rate(queue)
        for kind in ("cnt", "end", "dur"):
            key = self.counter_key(kind, queue)
            await self.meta.delete(key)
            self.tally.forget(key)

    async def peek(self, queue: str, limit: int) -> list[Message]:
        """Ready, leased and delayed messages, oldest first.

        JetStream tells no per-message delivery count without a delivery, so a
        message its consumer has delivered shows one attempt more than its copy's
        base (a redelivery after an expired lease is not told apart)."""
        n = self.names
        async with translated(self.jet.where, queue):
            info, ready, delayed, lanes, waiting = await asyncio.gather(
                self.jet.js.consumer_info(n.stream(queue), CONSUMER),
                self.scan(n.stream(queue), n.subject(queue), limit),
                self.scan(n.delay_stream(queue), n.delay_subject(queue), limit),
                self.scan(n.prio_stream(queue), n.prio_subject(queue), limit),
                self.scan(n.group_stream(queue), n.group_subject(queue), limit),
            )
        delivered = int(info.delivered.stream_seq or 0) if info.delivered else 0
        out: list[Message] = []
        tagged = [(raw, True) for raw in ready] + [
            (raw, False) for raw in (*delayed, *lanes, *waiting)
        ]
        for raw, on_queue in tagged:
            meta = meta_of(raw.headers)
            if meta is None:
                continue
            leased = on_queue and int(raw.seq or 0) <= delivered
            out.append(meta.message(queue, raw.data or b"", meta.base + leased))
        out.sort(key=lambda m: m.id)
        return out[:limit]

    async def _one_stats(self, queue: str) -> QueueStats:
        n = self.names
        async with translated(self.jet.where, queue):
            info, delayed, dead, first, marks, lanes = await asyncio.gather(
                self.jet.js.consumer_info(n.stream(queue), CONSUMER),
                self.jet.stream_info(n.delay_stream(queue), queue),
                self.jet.stream_info(n.dead_stream(queue), queue),
                self._oldest(queue),
                self.jet.stream_info(
                    n.ended_stream, queue, n.ended_subject(n.stream(queue))
                ),
                self._lane_stats(queue),
            )
        age = None if first is None else max(0.0, (now_ms() - first) / 1000)
        # Pending acks whose lease ended (marked, NAKed) wait to be delivered again.
        pending = int(info.num_ack_pending or 0)
        ended = min(pending, len(marks.state.subjects or {}))
        more_ready, more_leased = lanes
        return QueueStats(
            queue,
            ready=int(info.num_pending or 0) + ended + more_ready,
            delayed=int(delayed.state.messages),
            in_flight=pending - ended + more_leased,
            dead=int(dead.state.messages),
            oldest_age=age,
        )

    async def _lane_stats(self, queue: str) -> tuple[int, int]:
        """Ready and leased messages of the priority stream, plus the grouped
        ones waiting behind their heads (ready)."""
        n = self.names
        try:
            waiting = (await self.jet.stream_info(n.group_stream(queue), queue)).state
        except QueueNotFound:
            waiting = None
        ready = int(waiting.messages) if waiting is not None else 0
        if not self.lanes.get(queue):
            return ready, 0
        stream = n.prio_stream(queue)
        async with translated(self.jet.where, queue):
            infos = await asyncio.gather(
                *(self.jet.js.consumer_info(stream, level_consumer(x)) for x in LEVELS)
            )
        marks = await self.jet.stream_info(
            n.ended_stream, queue, n.ended_subject(stream)
        )
        pending = sum(int(i.num_ack_pending or 0) for i in infos)
        ended = min(pending, len(marks.state.subjects or {}))
        ready += sum(int(i.num_pending or 0) for i in infos) + ended
        return ready, pending - ended

    async def _oldest(self, queue: str) -> int | None:
        n = self.names
        firsts = await asyncio.gather(
            self.scan(n.stream(queue), n.subject(queue), 1),
            self.scan(n.delay_stream(queue), n.delay_subject(queue), 1),
        )
        times = [
            meta.enqueued_ms
            for raws in firsts
            for raw in raws
            if (meta := meta_of(raw.headers)) is not None
        ]
        return min(times, default=None)

    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        for queue in queues:
            await self.policy(queue)
        return list(await asyncio.gather(*(self._one_stats(q) for q in queues)))

    async def purge(self, queue: str, *, dead: bool) -> int:
        await self.policy(queue)
        n = self.names
        if dead:
            return await self.jet.purge(n.dead_stream(queue), queue)
        ready = await self.jet.purge(n.stream(queue), queue)
        await self.jet.unmark(n.ended_stream, n.ended_subject(n.stream(queue)))
        ready += await self.jet.purge(n.delay_stream(queue), queue)
        for stream in (n.prio_stream(queue), n.group_stream(queue)):
            with contextlib.suppress(QueueNotFound):  # made on first use
                ready += await self.jet.purge(stream, queue)
        await self.jet.unmark(n.ended_stream, n.ended_subject(n.prio_stream(queue)))
        await self.meta.delete(self.group_key(queue))
        return ready

    async def counters(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for queue in queues:
            await self.policy(queue)
            # Both keys: counts of either kind stored by an older version in
            # "cnt" still count.
            sent, ended = await asyncio.gather(
                self.tally.read(self.counter_key("cnt", queue)),
                self.tally.read(self.counter_key("end", queue)),
            )
            out[queue] = {
                name: int(sent.get(name, 0)) + int(ended.get(name, 0))
                for name in COUNTERS
            }
        return out

    async def record_durations(
        self, queue: str, observations: Mapping[str, int], count: int, sum_ms: int
    ) -> None:
        cells = duration_cells(observations, count, sum_ms)
        if cells:
            await self.tally.add(self.counter_key("dur", queue), cells)

    async def durations(self, queues: Sequence[str]) -> dict[str, DurationHistogram]:
        out: dict[str, DurationHistogram] = {}
        for queue in queues:
            cells = await self.tally.read(self.counter_key("dur", queue))
            out[queue] = DurationHistogram.from_cells(cells)
        return out
