"""Inspection of :class:`~postroom.client.core.AsyncClient`: depths, counters,
handler durations, peeking."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import overload

from ..model import arguments as check
from ..model import validate
from ..model.message import Message, QueueStats
from ..model.stats import DurationHistogram
from ._base import ClientBase

__all__ = ["Inspection"]


class Inspection(ClientBase):
    """The reading methods of the client: what the dashboard, ``/metrics`` and
    the CLI show."""

    @overload
    async def stats(self, queue: None = None) -> dict[str, QueueStats]: ...
    @overload
    async def stats(self, queue: str) -> QueueStats: ...

    async def stats(
        self, queue: str | None = None
    ) -> dict[str, QueueStats] | QueueStats:
        """Depths of one queue, or of every queue as a dict by name."""
        validate.optional_name(queue)
        backend = await self._b()
        if queue is not None:
            await self.queue_policy(queue)
            [st] = await backend.stats([queue])
            return st
        names = await backend.list_queues()
        return {s.queue: s for s in await backend.stats(names)}

    async def queue_stats(self, queues: Sequence[str]) -> list[QueueStats]:
        """Depths of the named queues in one round trip, in the same order."""
        check.check_names(queues)
        if not queues:
            return []
        return await (await self._b()).stats(queues)

    async def counters(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        """Lifetime counters of the named queues, summed over every process:
        ``sent``, ``acked``, ``retried``, ``dead_lettered``, ``redriven``."""
        check.check_names(queues)
        if not queues:
            return {}
        return await (await self._b()).counters(queues)

    async def durations(self, queues: Sequence[str]) -> dict[str, DurationHistogram]:
        """Handler duration histograms of the named queues, over every process.

        Raises :class:`NotSupported` on a backend that keeps none.
        """
        check.check_names(queues)
        if not queues:
            return {}
        return await (await self._b()).durations(queues)

    async def record_durations(
        self, queue: str, observations: Mapping[str, int], count: int, sum_ms: int
    ) -> None:
        """Add a batch of handler durations of ``queue`` to its histogram: per
        bucket label the durations at most that long, their count and sum (ms).

        Raises :class:`NotSupported` on a backend that keeps none.
        """
        check.check_durations(queue, observations, count, sum_ms)
        await (await self._b()).record_durations(queue, observations, count, sum_ms)

    async def peek(self, queue: str, limit: int = 10) -> list[Message]:
        """Look at up to ``limit`` messages without leasing them."""
        check.check_peek(queue, limit)
        await self.queue_policy(queue)
        return await self.backend.peek(queue, limit)
