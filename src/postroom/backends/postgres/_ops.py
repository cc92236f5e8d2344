"""Statements shared by several operations: run a named query, resolve leases.

Each function takes a connection of the backend's pool (autocommit: a single
statement is its own transaction) and the backend's :class:`Sql`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from ...model.errors import QueueNotFound
from .._common import lease_expired_entry
from ._records import dumps, lease_lost

__all__ = [
    "Conn",
    "Grouped",
    "Sql",
    "execute_grouped",
    "expire",
    "fetch",
    "fetch_grouped",
    "in_transaction",
    "lost",
    "pipeline",
    "require_queue",
    "run",
    "unblock_missed",
]

Conn = psycopg.AsyncConnection[Any]
Cursor = psycopg.AsyncCursor[Any]
_IN_BLOCK = (TransactionStatus.INTRANS, TransactionStatus.INERROR)
# Statements that unblock the next message of the groups they change themselves.
_SELF_UNBLOCKING = frozenset({"ack"})
# A statement that changes messages of groups: its name, its parameters and the
# (queue, group) of each message it changes (group None: none).
Grouped = tuple[str, dict[str, Any], Sequence[tuple[str, str | None]]]


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


async def execute_grouped(conn: Conn, sql: Sql, call: Grouped) -> Cursor:
    """Queue a send, ack, dead letter or redrive: ``(query name, params, the
    (queue, group) of each message it changes)``. With groups, in a transaction
    that locks them first (so that it sees every change made to them before) and
    then unblocks their heads (``unblock_heads`` in queries.sql; ``ack`` does it
    itself): its own ``BEGIN`` ... ``COMMIT`` unless one is open on ``conn``
    (psycopg's ``transaction()`` would sync a pipeline twice). Returns
    the query's cursor: in a pipeline, its rows come once the pipeline is synced
    (run it in :func:`pipeline`, which rolls back a failed ``BEGIN``)."""
    name, params, groups = call
    pairs = dict.fromkeys((q, g) for q, g in groups if g is not None)
    full = {"channel": sql.channel, **params}
    if not pairs:
        return await conn.execute(sql[name], full)
    locks = {
        "channel": sql.channel,
        "queues": [q for q, _ in pairs],
        "groups": [g for _, g in pairs],
    }
    own = not in_transaction(conn)
    if own:
        await conn.execute(b"BEGIN")
    await conn.execute(sql["group_locks"], locks)
    cur = await conn.execute(sql[name], full)
    if name not in _SELF_UNBLOCKING:
        await conn.execute(sql["unblock_heads"], locks)
    if own:
        await conn.execute(b"COMMIT")
    return cur


def in_transaction(conn: Conn) -> bool:
    """Whether a transaction block is open on ``conn`` (a pipeline's implicit
    one does not count)."""
    return conn.info.transaction_status in _IN_BLOCK


@contextlib.asynccontextmanager
async def pipeline(conn: Conn) -> AsyncIterator[None]:
    """``conn.pipeline()`` (one round trip for what runs inside) that leaves no
    transaction block of its own open when a statement fails."""
    outer = in_transaction(conn)
    try:
        async with conn.pipeline():
            yield
    except BaseException:
        if not outer and in_transaction(conn) and not conn.broken:
            with contextlib.suppress(psycopg.Error):
                await conn.rollback()
        raise


async def fetch_grouped(conn: Conn, sql: Sql, call: Grouped) -> list[tuple[Any, ...]]:
    """:func:`execute_grouped` in one round trip; the query's rows."""
    if all(g is None for _, g in call[2]):
        return await fetch(conn, sql, call[0], call[1])
    async with pipeline(conn):
        cur = await execute_grouped(conn, sql, call)
    return await cur.fetchall()


async def unblock_missed(
    conn: Conn,
    sql: Sql,
    changed: Iterable[tuple[str, str | None]],
    locked: Iterable[tuple[str, str | None]],
) -> None:
    """Unblock the heads of the groups a write ``changed`` without having locked
    them first (a delivery rebuilt from an HTTP or SQS receipt does not know its
    group): then, in a transaction of their own, after the write committed."""
    missed = {(q, g) for q, g in changed if g is not None}
    missed -= set(locked)
    if missed:
        call = ("unblock_heads", _pairs(missed), list(missed))
        async with pipeline(conn):
            await execute_grouped(conn, sql, call)


def _pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    ordered = sorted(pairs)
    return {"queues": [q for q, _ in ordered], "groups": [g for _, g in ordered]}


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
    base = {"queue": queue, "now": now}
    locked = {g for (g,) in await fetch(conn, sql, "expired_groups", base)}
    if locked:
        locks = {"queues": [queue] * len(locked), "groups": sorted(locked)}
        await fetch(conn, sql, "group_locks", locks)
    rows = await fetch(conn, sql, "expired", base)
    requeue: tuple[list[str], list[str]] = ([], [])
    bury: tuple[list[str], list[str]] = ([], [])
    groups: list[tuple[str, str | None]] = []
    for mid, attempts, consumer, group in rows:
        if group is not None and group not in locked:
            continue  # expired since its group was locked: the next resolution's
        entry = dumps(lease_expired_entry(now, consumer).to_dict())
        target = bury if attempts >= max_attempts else requeue
        target[0].append(mid)
        target[1].append(entry)
        if target is bury:
            groups.append((queue, group))
    if requeue[0]:
        await fetch(
            conn,
            sql,
            "requeue_expired",
            {**base, "ids": requeue[0], "entries": requeue[1]},
        )
    if bury[0]:
        params = {
            **base,
            "ids": bury[0],
            "entries": bury[1],
            "token": None,
            "reason": "lease_expired",
        }
        await fetch_grouped(conn, sql, ("bury", params, groups))
