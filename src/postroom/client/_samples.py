"""Samples over time of :class:`~postroom.client.core.AsyncClient`: every queue's
counters and depths, kept in the backend for the dashboard's charts (see
:mod:`postroom.model.samples`)."""

from __future__ import annotations

from datetime import datetime

from ..model.message import now_ms
from ..model.samples import (
    STEP_MS,
    WINDOW_MS,
    QueueSample,
    Sample,
    bucket_of,
    sample_time,
)
from ._base import ClientBase

__all__ = ["Samples"]


class Samples(ClientBase):
    """Take and read the samples of every queue's counters and depths."""

    async def take_sample(self, at: datetime | None = None) -> bool:
        """Store the counters and depths of every queue, as of now, as the sample
        of the time bucket of ``at`` (default: now; else within the window and not
        in the future), unless another process stored that bucket's sample
        first: whether this call stored it.

        Raises :class:`NotSupported` on a backend that keeps no samples.
        """
        now = now_ms()
        at_ms = now if at is None else sample_time(at, now)
        bucket = bucket_of(at_ms)
        backend = await self._b()
        taken = await backend.list_samples(bucket, now)
        if taken and taken[0][0] == bucket:
            return False
        names = await backend.list_queues()
        counts = await backend.counters(names) if names else {}
        depths = await backend.stats(names) if names else []
        queues = {}
        for st in depths:
            c = counts.get(st.queue, {})
            queues[st.queue] = QueueSample(
                c.get("sent", 0), c.get("acked", 0), c.get("retried", 0),
                c.get("dead_lettered", 0), st.ready, st.oldest_age,
            )  # fmt: skip
        record = Sample(at_ms, queues).dumps()
        return await backend.put_sample(bucket, record, bucket + WINDOW_MS + STEP_MS)

    async def samples(self) -> list[Sample]:
        """The samples of the last :data:`~postroom.model.samples.WINDOW_SECONDS`,
        oldest first, whichever process took them.

        Raises :class:`NotSupported` on a backend that keeps no samples.
        """
        now = now_ms()
        found = await (await self._b()).list_samples(now - WINDOW_MS, now)
        return [Sample.loads(record) for _, record in found]
