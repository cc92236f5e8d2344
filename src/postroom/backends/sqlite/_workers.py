"""The worker registry (one row per worker process) and the samples over time
(one row per time bucket): the SQLite operations."""

from __future__ import annotations

from ._conn import QUERIES as Q
from ._conn import write
from ._store import Store

__all__ = ["delete_worker", "list_samples", "list_workers", "put_sample", "put_worker"]


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


def put_sample(store: Store, bucket_ms: int, record: str, expires_ms: int) -> bool:
    """Store the sample of a bucket unless it has one; whether it was stored."""
    with write(store.conn):
        cur = store.conn.execute(Q["sample_put"], (bucket_ms, record, expires_ms))
    return cur.rowcount == 1


def list_samples(store: Store, since_ms: int, now_ms: int) -> list[tuple[int, str]]:
    """The samples from ``since_ms`` on, after dropping the expired ones."""
    with write(store.conn):
        store.conn.execute(Q["sample_prune"], (now_ms,))
    rows = store.conn.execute(Q["sample_list"], (since_ms, now_ms)).fetchall()
    return [(int(bucket), str(record)) for bucket, record in rows]
