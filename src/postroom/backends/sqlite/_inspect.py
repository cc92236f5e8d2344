"""Reading a queue's state (peek, depths, counters) and purging it: the SQLite
operations off the send and lease path."""

from __future__ import annotations

from collections.abc import Sequence

from ...model.errors import QueueNotFound
from ...model.message import Message, QueueStats, now_ms
from ...model.stats import COUNTERS
from ._conn import QUERIES as Q
from ._conn import write
from ._records import message_from_row
from ._store import Store

__all__ = ["counters", "peek", "purge", "stats"]


def peek(store: Store, queue: str, limit: int) -> list[Message]:
    """Messages of the queue in the order they were stored, untouched."""
    store.max_attempts(queue)
    rows = store.conn.execute(Q["peek"], (queue, limit)).fetchall()
    return [message_from_row(r) for r in rows]


def stats(store: Store, queues: Sequence[str]) -> list[QueueStats]:
    """Depths of the named queues, in order."""
    out: list[QueueStats] = []
    for name in queues:
        now = now_ms()
        store.resolve_expired(name, now)
        args = {"queue": name, "now": now}
        ready, delayed, leased, dead, oldest = store.conn.execute(
            Q["depths"], args
        ).fetchone()
        age = None if oldest is None else max(0.0, (now - oldest) / 1000)
        out.append(QueueStats(name, ready, delayed, leased, dead, age))
    return out


def purge(store: Store, queue: str, dead: bool) -> int:
    """Delete the queue's messages (or dead letters); return how many."""
    store.max_attempts(queue)
    with write(store.conn):
        q = Q["purge_dead" if dead else "purge_messages"]
        return int(store.conn.execute(q, (queue,)).rowcount)


def counters(store: Store, queues: Sequence[str]) -> dict[str, dict[str, int]]:
    """Lifetime counters per queue."""
    out: dict[str, dict[str, int]] = {}
    for name in queues:
        row = store.conn.execute(Q["counters"], (name,)).fetchone()
        if row is None:
            raise QueueNotFound(name)
        out[name] = dict(zip(COUNTERS, row, strict=True))
    return out
