"""Handler duration histograms: the SQLite operations.

One row per (queue, cell) in ``postroom_durations``; a batch of increments is one
transaction, run in the backend's thread like every other operation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...model.stats import DurationHistogram
from ._conn import QUERIES as Q
from ._conn import write
from ._store import Store

__all__ = ["durations", "record_durations"]


def record_durations(store: Store, queue: str, cells: Mapping[str, int]) -> None:
    """Add ``cells`` (see :func:`postroom.backends.base.duration_cells`)."""
    if not cells:
        return
    with write(store.conn):
        store.conn.executemany(
            Q["durations_add"], [(queue, name, n) for name, n in cells.items()]
        )


def durations(store: Store, queues: Sequence[str]) -> dict[str, DurationHistogram]:
    """The histogram of each queue (zeros when nothing was recorded)."""
    out: dict[str, DurationHistogram] = {}
    for name in queues:
        rows = store.conn.execute(Q["durations_get"], (name,)).fetchall()
        out[name] = DurationHistogram.from_cells(dict(rows))
    return out
