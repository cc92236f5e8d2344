"""The worker registry: the SQLite operations (one row per worker process)."""

from __future__ import annotations

from ._conn import QUERIES as Q
from ._conn import write
from ._store import Store

__all__ = ["delete_worker", "list_workers", "put_worker"]


def put_worker(store: Store, worker_id: str, record: str, expires_ms: int) -> None:
    """Store or replace one worker's record until ``expires_ms``."""
    with write(store.conn):
        store.conn.execute(Q["worker_put"], (worker_id, record, expires_ms))


def list_workers(store: Store, now_ms: int) -> list[str]:
    """The records not expired, after dropping the expired ones."""
    with write(store.conn):
        store.conn.execute(Q["worker_prune"], (now_ms,))
    rows = store.conn.execute(Q["worker_list"], (now_ms,)).fetchall()
    return [str(record) for (record,) in rows]


def delete_worker(store: Store, worker_id: str) -> None:
    """Forget one worker's record."""
    with write(store.conn):
        store.conn.execute(Q["worker_delete"], (worker_id,))
