"""Handler duration histograms: the PostgreSQL operations.

One row per (queue, cell) in the schema's ``durations`` table; a batch of
increments is one ``INSERT ... ON CONFLICT`` statement (its own transaction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...model.stats import DurationHistogram
from ._ops import Conn, Sql, fetch, run

__all__ = ["durations", "record_durations"]


async def record_durations(
    conn: Conn, sql: Sql, queue: str, cells: Mapping[str, int]
) -> None:
    """Add ``cells`` (see :func:`postroom.backends.base.duration_cells`)."""
    if not cells:
        return
    params = {"queue": queue, "buckets": list(cells), "ns": list(cells.values())}
    await run(conn, sql, "durations_add", params)


async def durations(
    conn: Conn, sql: Sql, queues: Sequence[str]
) -> dict[str, DurationHistogram]:
    """The histogram of each queue (zeros when nothing was recorded)."""
    names = list(queues)
    cells: dict[str, dict[str, int]] = {name: {} for name in names}
    if names:
        rows = await fetch(conn, sql, "durations_get", {"queues": names})
        for queue, bucket, n in rows:
            cells[queue][bucket] = n
    return {name: DurationHistogram.from_cells(c) for name, c in cells.items()}
