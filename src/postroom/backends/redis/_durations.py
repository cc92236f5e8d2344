"""Handler duration histograms in Redis: one hash per queue, under the queue's
hash tag (``{prefix:queue}:durations``), cell name -> count.

A batch of increments is one ``MULTI``/``EXEC`` of ``HINCRBY`` calls on that one
key, so it is atomic and works on a cluster; reads pipeline one ``HGETALL`` per
queue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from redis.asyncio import Redis

from ...model.stats import DurationHistogram
from ._keys import queue_tag

__all__ = ["durations", "durations_key", "record_durations"]


def durations_key(prefix: str, queue: str) -> str:
    """The hash of ``queue``'s handler duration histogram."""
    return f"{queue_tag(prefix, queue)}:durations"


async def record_durations(
    redis: Redis, prefix: str, queue: str, cells: Mapping[str, int]
) -> None:
    """Add ``cells`` (see :func:`postroom.backends.base.duration_cells`)."""
    if not cells:
        return
    key = durations_key(prefix, queue)
    async with redis.pipeline(transaction=True) as pipe:
        for name, n in cells.items():
            pipe.hincrby(key, name, n)
        await pipe.execute()


async def durations(
    redis: Redis, prefix: str, queues: Sequence[str]
) -> dict[str, DurationHistogram]:
    """The histogram of each queue (zeros when nothing was recorded)."""
    if not queues:
        return {}
    async with redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.hgetall(durations_key(prefix, queue))
        results = await pipe.execute()
    out: dict[str, DurationHistogram] = {}
    for queue, raw in zip(queues, results, strict=True):
        cells = {k.decode(): int(v) for k, v in raw.items()}
        out[queue] = DurationHistogram.from_cells(cells)
    return out
