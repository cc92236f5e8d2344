"""Storing messages: one batched statement, or one by one under dedup keys."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...model.errors import QueueNotFound
from ...model.message import Message, now_ms
from ._ops import Conn, Sql, fetch, fetch_grouped, require_queue, run
from ._records import message_columns, order_columns, ordered

__all__ = ["enqueue_dedup", "insert"]

_PRUNE_EVERY_MS = 60_000


async def insert(conn: Conn, sql: Sql, queue: str, messages: Sequence[Message]) -> None:
    """Store ``messages`` on ``queue`` in one statement, count and announce them
    (with groups, after locking them: one transaction)."""
    params = {**message_columns(messages), "queue": queue, "n": len(messages)}
    if ordered(messages):
        params.update(order_columns(messages))
        groups = [(queue, m.group) for m in messages]
        rows = await fetch_grouped(conn, sql, ("enqueue_ordered", params, groups))
    else:
        rows = await fetch(conn, sql, "enqueue", params)
    if not rows:
        raise QueueNotFound(queue)


async def enqueue_dedup(
    conn: Conn,
    sql: Sql,
    queue: str,
    messages: Sequence[Message],
    window_ms: int,
    pruned: dict[str, int],
) -> list[str]:
    """Store messages with dedup keys as ``memory.py`` does (call inside a
    transaction); ``pruned`` remembers when each queue's old keys were dropped."""
    now = now_ms()
    await require_queue(conn, sql, queue)
    if now - pruned.get(queue, 0) > _PRUNE_EVERY_MS:
        await run(conn, sql, "dedup_prune", {"queue": queue, "now": now})
        pruned[queue] = now
    ids: list[str] = []
    for m in messages:
        if m.dedup_key is not None:
            key = {
                "queue": queue,
                "key": m.dedup_key,
                "id": m.id,
                "expires_at": now + window_ms,
            }
            first = await _known(conn, sql, key, now)
            if first is not None:
                ids.append(first)
                continue
        # One at a time, so that a later duplicate in the batch sees it.
        await insert(conn, sql, queue, [m])
        ids.append(m.id)
    return ids


async def _known(conn: Conn, sql: Sql, key: dict[str, Any], now: int) -> str | None:
    """The first id of a dedup key still known; else take the key for this
    message and return ``None``."""
    while not await fetch(conn, sql, "dedup_claim", key):
        rows = await fetch(conn, sql, "dedup_get", key)
        if not rows:  # pruned between the two statements: take it again
            continue
        [(first, expires, present)] = rows
        if expires > now or present:
            return str(first)
        await run(conn, sql, "dedup_put", key)
        break
    return None
