"""Dead letters, redrive and topic subscriptions: the SQLite operations.

Functions of a :class:`Store`, each one transaction, run in the backend's thread.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from ...model.errors import QueueNotFound
from ...model.message import DeadLetter, Message, Subscription, now_ms
from ...model.queries import DeadLetterQuery
from ...model.stats import TopicInfo
from ._conn import QUERIES as Q
from ._conn import write
from ._records import dead_from_row, dumps
from ._store import Store

__all__ = [
    "dead_letters",
    "delete_queue",
    "delete_subscription",
    "fan_out",
    "list_subscriptions",
    "list_topics",
    "put_subscription",
    "record_publish",
    "redrive",
]


def dead_letters(store: Store, queue: str, query: DeadLetterQuery) -> list[DeadLetter]:
    """Dead letters of ``queue`` in order of death: reason, ids and (without an
    error filter) the limit in SQL, the error filter in Python."""
    store.resolve_expired(queue, now_ms())
    args = {
        "queue": queue,
        "reason": query.reason,
        "ids": None if query.ids is None else dumps(list(query.ids)),
        "limit": query.limit if query.error_contains is None else -1,
    }
    cursor = store.conn.execute(Q["dead_letters"], args)
    try:
        return query.select(dead_from_row(row) for row in cursor)
    finally:
        cursor.close()


def redrive(
    store: Store, queue: str, ids: Sequence[str] | None, to: str, limit: int
) -> list[str]:
    """Move up to ``limit`` dead letters of ``queue`` onto ``to`` in one transaction."""
    conn = store.conn
    store.max_attempts(queue)
    store.max_attempts(to)
    now = now_ms()
    with write(conn):
        args = {
            "queue": queue,
            "reason": None,
            "ids": None if ids is None else dumps(list(ids)),
            "limit": limit if ids is None else -1,
        }
        rows = conn.execute(Q["dead_letters"], args).fetchall()
        by_id = {r[2]: r[0] for r in rows}
        order = [r[2] for r in rows] if ids is None else list(dict.fromkeys(ids))
        moved = [mid for mid in order if mid in by_id][:limit]
        seqs = [by_id[mid] for mid in moved]
        params = [{"to": to, "now": now, "seq": s} for s in seqs]
        conn.executemany(Q["redrive_clear"], [{"to": to, "seq": s} for s in seqs])
        conn.executemany(Q["redrive_insert"], params)
        conn.executemany(Q["delete_dead_seq"], [(s,) for s in seqs])
        if moved:
            conn.execute(Q["count_redriven"], (len(moved), queue))
    return moved


def put_subscription(store: Store, subscription: Subscription) -> Subscription:
    """Store a subscription; an existing one of that name is returned unchanged."""
    conn = store.conn
    key = (subscription.topic, subscription.name)
    with write(conn):
        conn.execute(Q["put_subscription"], (*key, dumps(subscription.to_dict())))
        conn.execute(Q["touch_topic"], (subscription.topic,))
        (data,) = conn.execute(Q["get_subscription"], key).fetchone()
    return Subscription.from_dict(json.loads(data))


def list_subscriptions(store: Store, topic: str | None) -> list[Subscription]:
    """Subscriptions of ``topic`` (or all), sorted by topic and name."""
    rows = store.conn.execute(Q["list_subscriptions"], {"topic": topic}).fetchall()
    return [Subscription.from_dict(json.loads(r[0])) for r in rows]


def delete_subscription(store: Store, topic: str, name: str) -> bool:
    """Delete a subscription with its queue, messages and dead letters."""
    conn = store.conn
    with write(conn):
        row = conn.execute(Q["get_subscription"], (topic, name)).fetchone()
        if row is None:
            return False
        queue = Subscription.from_dict(json.loads(row[0])).queue
        conn.execute(Q["delete_subscription"], (topic, name))
        for q in ("purge_messages", "purge_dead", "purge_dedup", "delete_queue"):
            conn.execute(Q[q], (queue,))
    return True


def delete_queue(store: Store, queue: str) -> bool:
    """Delete a queue with its messages, dead letters, dedup keys and durations."""
    conn = store.conn
    with write(conn):
        existed = conn.execute(Q["delete_queue"], (queue,)).rowcount > 0
        for q in ("purge_messages", "purge_dead", "purge_dedup", "delete_durations"):
            conn.execute(Q[q], (queue,))
        conn.execute(Q["bucket_delete"], (queue,))
    return existed


def record_publish(store: Store, topic: str, copies: int) -> None:
    """Count one publish (and whether it reached no subscription)."""
    with write(store.conn):
        store.conn.execute(
            Q["record_publish"], {"topic": topic, "unrouted": int(copies == 0)}
        )


def fan_out(store: Store, topic: str, copies: Sequence[Message]) -> int:
    """Store every copy of one publish and count it, in one transaction."""
    stored = 0
    with write(store.conn):
        for copy in copies:
            try:
                store.enqueue(copy.queue, [copy], 0)
            except QueueNotFound:
                continue
            stored += 1
        record_publish(store, topic, stored)
    return stored


def list_topics(store: Store) -> list[TopicInfo]:
    """Every topic that has subscriptions or was published to, sorted."""
    rows = store.conn.execute(Q["list_topics"]).fetchall()
    return [TopicInfo(t, subs, pub, unrouted) for t, subs, pub, unrouted in rows]
