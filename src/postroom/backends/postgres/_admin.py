"""Depths, dead letters, redrive and topic subscriptions: the PostgreSQL operations.

Functions of one pooled connection, each one statement or one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg.types.json import Jsonb

from ...model.errors import QueueNotFound
from ...model.message import DeadLetter, Message, QueueStats, Subscription, now_ms
from ...model.queries import DeadLetterQuery
from ...model.stats import COUNTERS, TopicInfo
from ._ops import Conn, Sql, expire, fetch, fetch_grouped, require_queue, run
from ._records import dead_from_row, message_columns

__all__ = [
    "counters",
    "dead_letters",
    "delete_queue",
    "delete_subscription",
    "fan_out",
    "list_topics",
    "put_subscription",
    "redrive",
    "resolve_expired",
    "stats",
]


async def resolve_expired(
    conn: Conn, sql: Sql, queues: Sequence[str], now: int
) -> None:
    """Resolve the expired leases of ``queues`` (each must exist)."""
    rows = await fetch(
        conn, sql, "expired_queues", {"queues": list(queues), "now": now}
    )
    known = {name: (max_attempts, due) for name, max_attempts, due in rows}
    for name in queues:
        if name not in known:
            raise QueueNotFound(name)
    for name, (max_attempts, due) in known.items():
        if due:
            async with conn.transaction():
                await expire(conn, sql, name, now, max_attempts)


async def stats(conn: Conn, sql: Sql, queues: Sequence[str]) -> list[QueueStats]:
    """Depths of the named queues, in order, after resolving expired leases."""
    names = list(queues)
    now = now_ms()
    await resolve_expired(conn, sql, names, now)
    rows = await fetch(conn, sql, "depths", {"queues": names, "now": now})
    out: list[QueueStats] = []
    for name, ready, delayed, leased, dead, oldest in rows:
        age = None if oldest is None else max(0.0, (now - oldest) / 1000)
        out.append(QueueStats(name, ready, delayed, leased, dead, age))
    return out


async def counters(
    conn: Conn, sql: Sql, queues: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Lifetime counters per queue."""
    rows = await fetch(conn, sql, "counters", {"queues": list(queues)})
    found = {r[0]: dict(zip(COUNTERS, r[1:], strict=True)) for r in rows}
    out: dict[str, dict[str, int]] = {}
    for name in queues:
        if name not in found:
            raise QueueNotFound(name)
        out[name] = found[name]
    return out


async def dead_letters(
    conn: Conn, sql: Sql, queue: str, query: DeadLetterQuery
) -> list[DeadLetter]:
    """Dead letters of ``queue`` in order of death: reason, ids and (without an
    error filter) the limit in SQL, the error filter in Python."""
    await resolve_expired(conn, sql, [queue], now_ms())
    args = {
        "queue": queue,
        "reason": query.reason,
        "ids": None if query.ids is None else list(query.ids),
        "limit": query.limit if query.error_contains is None else None,
    }
    rows = await fetch(conn, sql, "dead_letters", args)
    return query.select(dead_from_row(row) for row in rows)


async def redrive(
    conn: Conn, sql: Sql, queue: str, ids: Sequence[str] | None, to: str, limit: int
) -> list[str]:
    """Move up to ``limit`` dead letters of ``queue`` onto ``to`` in one transaction."""
    async with conn.transaction():
        await require_queue(conn, sql, queue)
        await require_queue(conn, sql, to)
        args = {
            "queue": queue,
            "ids": None if ids is None else list(ids),
            "limit": limit if ids is None else None,
        }
        picked = dict(await fetch(conn, sql, "redrive_pick", args))
        found = list(picked)
        if ids is not None:
            found = [mid for mid in dict.fromkeys(ids) if mid in picked]
        moved = found[:limit]
        if moved:
            params = {"queue": queue, "ids": moved, "to": to, "now": now_ms()}
            groups = [(to, picked[mid]) for mid in moved]
            await fetch_grouped(conn, sql, ("redrive_move", params, groups))
    return moved


async def put_subscription(
    conn: Conn, sql: Sql, subscription: Subscription
) -> Subscription:
    """Store a subscription; an existing one of that name is returned unchanged."""
    params = {
        "topic": subscription.topic,
        "name": subscription.name,
        "data": Jsonb(subscription.to_dict()),
    }
    rows = await fetch(conn, sql, "put_subscription", params)
    return Subscription.from_dict(rows[0][0])


async def list_subscriptions(
    conn: Conn, sql: Sql, topic: str | None
) -> list[Subscription]:
    """Subscriptions of ``topic`` (or all), sorted by topic and name."""
    rows = await fetch(conn, sql, "list_subscriptions", {"topic": topic})
    return [Subscription.from_dict(r[0]) for r in rows]


async def delete_subscription(conn: Conn, sql: Sql, topic: str, name: str) -> bool:
    """Delete a subscription with its queue, messages and dead letters."""
    async with conn.transaction():
        rows = await fetch(
            conn, sql, "delete_subscription", {"topic": topic, "name": name}
        )
        if not rows:
            return False
        queue = {"queue": Subscription.from_dict(rows[0][0]).queue}
        for q in ("purge_messages", "purge_dead", "purge_dedup", "delete_queue"):
            await run(conn, sql, q, queue)
    return True


async def delete_queue(conn: Conn, sql: Sql, queue: str) -> bool:
    """Delete a queue with its messages, dead letters, dedup keys and durations.

    The queue row goes first: a concurrent send locks it, so none is left behind.
    """
    params = {"queue": queue}
    async with conn.transaction():
        existed = await run(conn, sql, "delete_queue", params) > 0
        for q in ("purge_messages", "purge_dead", "purge_dedup", "delete_durations"):
            await run(conn, sql, q, params)
    return existed


async def fan_out(conn: Conn, sql: Sql, topic: str, copies: Sequence[Message]) -> int:
    """Store every copy of one publish and count it, in one statement."""
    params = {"topic": topic, **message_columns(copies)}
    rows = await fetch(conn, sql, "fan_out", params)
    return sum(int(r[0]) for r in rows)


async def list_topics(conn: Conn, sql: Sql) -> list[TopicInfo]:
    """Every topic that has subscriptions or was published to, sorted."""
    rows = await fetch(conn, sql, "list_topics", {})
    return [TopicInfo(t, subs, pub, unrouted) for t, subs, pub, unrouted in rows]
