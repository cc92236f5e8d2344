"""Statements shared by several operations: run a named query, resolve leases.

Each function takes a connection of the backend's pool (autocommit: a single
statement is its own transaction) and the backend's :class:`Sql`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from ...model.errors import QueueNotFound
from .._common import lease_expired_entry
from ._records import dumps, lease_lost

__all__ = ["Conn", "Sql", "expire", "fetch", "lost", "require_queue", "run"]

Conn = psycopg.AsyncConnection[Any]


@dataclass(frozen=True, slots=True)
class Sql:
    """The named queries of one schema and its notification channel."""

    queries: dict[str, str]
    channel: str

    def __getitem__(self, name: str) -> str:
        return self.queries[name]


async def fetch(
    conn: Conn, sql: Sql, name: str, params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """Run query ``name``; return its rows."""
    cur = await conn.execute(sql[name], {"channel": sql.channel, **params})
    return await cur.fetchall()


async def run(conn: Conn, sql: Sql, name: str, params: dict[str, Any]) -> int:
    """Run statement ``name`` (no result rows); return the rows it changed."""
    cur = await conn.execute(sql[name], params)
    return cur.rowcount


async def require_queue(conn: Conn, sql: Sql, queue: str) -> None:
    """Raise :class:`QueueNotFound` unless ``queue`` was declared."""
    if not await fetch(conn, sql, "queue_exists", {"queue": queue}):
        raise QueueNotFound(queue)


async def lost(conn: Conn, sql: Sql, queue: str, message_id: str) -> Exception:
    """The error for a lease that is gone: the queue's absence comes first."""
    await require_queue(conn, sql, queue)
    return lease_lost(message_id)


async def expire(conn: Conn, sql: Sql, queue: str, now: int, max_attempts: int) -> None:
    """Resolve the queue's expired leases, as ``memory.py`` does (call inside a
    transaction): a history entry each, then visible again or a dead letter."""
    rows = await fetch(conn, sql, "expired", {"queue": queue, "now": now})
    requeue: tuple[list[str], list[str]] = ([], [])
    bury: tuple[list[str], list[str]] = ([], [])
    for mid, attempts, consumer in rows:
        entry = dumps(lease_expired_entry(now, consumer).to_dict())
        target = bury if attempts >= max_attempts else requeue
        target[0].append(mid)
        target[1].append(entry)
    base = {"queue": queue, "now": now}
    if requeue[0]:
        await fetch(
            conn,
            sql,
            "requeue_expired",
            {**base, "ids": requeue[0], "entries": requeue[1]},
        )
    if bury[0]:
        await fetch(
            conn,
            sql,
            "bury",
            {
                **base,
                "ids": bury[0],
                "entries": bury[1],
                "token": None,
                "reason": "lease_expired",
            },
        )
