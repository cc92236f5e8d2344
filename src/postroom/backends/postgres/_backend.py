"""``postgresql://``: queues in PostgreSQL tables, shared by every process.

Claims are one ``UPDATE ... WHERE (queue, id) IN (SELECT ... FOR UPDATE SKIP
LOCKED)`` statement, so concurrent consumers never wait for each other's rows;
nothing is deleted before an ack. Sends, acks and publishes are one statement
each, batched with ``unnest``, and wake waiting consumers with ``pg_notify``
on commit (see ``_listen.py``). The SQL is in ``queries.sql``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from ...model.errors import BackendError, QueueNotFound
from ...model.message import (
    DeadLetter,
    Delivery,
    HistoryEntry,
    Message,
    QueuePolicy,
    QueueStats,
    Subscription,
    from_ms,
    now_ms,
)
from ...model.queries import DeadLetterQuery
from ...model.stats import DurationHistogram, TopicInfo, duration_cells
from .._common import make_receipt, new_token, parse_receipt
from ..base import Backend, Capabilities
from . import _admin, _durations, _outbox, _send
from ._conn import PostgresSettings, init_schema, load_queries, translated
from ._listen import Listener
from ._ops import Conn, Sql, expire, fetch, lost, require_queue, run
from ._records import dumps, message_from_row

__all__ = ["PostgresBackend"]


class PostgresBackend(Backend):
    """Durable, multi-process backend on a PostgreSQL (>= 13) database."""

    capabilities = Capabilities(
        durable=True,
        cross_process=True,
        native_wakeups=True,
        transactional_send=True,
        worker_registry=True,
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.settings = PostgresSettings.from_url(url)
        self.sql = Sql(load_queries(self.settings.schema), self.settings.channel)
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._listener = Listener(self.settings.conninfo, self.settings.channel)
        self.pruned: dict[str, int] = {}
        """When each queue's expired dedup keys were last dropped (ms)."""

    def _conn(self) -> contextlib.AbstractAsyncContextManager[Conn]:
        if self._pool is None:
            raise BackendError(
                f"the PostgreSQL backend for {self.settings.where} is not connected: "
                "use the client as a context manager or call connect() first"
            )
        return self._pool.connection()

    # -- lifecycle -----------------------------------------------------------------

    @translated
    async def connect(self) -> None:
        """Create the schema (idempotent) and open the connection pool."""
        if self._pool is not None:
            return
        s = self.settings
        conn = await psycopg.AsyncConnection.connect(s.conninfo, autocommit=True)
        try:
            await init_schema(conn, self.sql.queries, s.schema)
        finally:
            await conn.close()
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            s.conninfo,
            min_size=s.pool_min,
            max_size=s.pool_max,
            timeout=s.pool_timeout,
            kwargs={"autocommit": True},
            open=False,
            name=f"postroom:{s.schema}",
        )
        try:
            await pool.open(wait=True, timeout=s.pool_timeout)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def aclose(self) -> None:
        """Stop listening and close every connection."""
        await self._listener.close()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def recover(self) -> None:
        """After a connection failure, test the pooled connections and replace the
        broken ones, so that a server restart fails one operation, not one per
        pooled connection."""
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await self._pool.check()

    # -- queues --------------------------------------------------------------------

    @translated
    async def declare_queue(
        self, queue: str, policy: QueuePolicy, *, replace: bool = True
    ) -> QueuePolicy:
        params = {
            "queue": queue,
            "policy": Jsonb(policy.to_dict()),
            "max_attempts": policy.max_attempts,
        }
        async with self._conn() as conn:
            name = "upsert_queue" if replace else "insert_queue"
            rows = await fetch(conn, self.sql, name, params)
            if not rows:  # created meanwhile by a transaction we did not see
                rows = await fetch(conn, self.sql, "get_queue", params)
        return QueuePolicy.from_dict(rows[0][0])

    @translated
    async def get_policy(self, queue: str) -> QueuePolicy | None:
        async with self._conn() as conn:
            rows = await fetch(conn, self.sql, "get_queue", {"queue": queue})
        return QueuePolicy.from_dict(rows[0][0]) if rows else None

    @translated
    async def list_queues(self) -> list[str]:
        async with self._conn() as conn:
            return [r[0] for r in await fetch(conn, self.sql, "list_queues", {})]

    # -- sending -------------------------------------------------------------------

    @translated
    async def enqueue(
        self, queue: str, messages: Sequence[Message], *, dedup_window_ms: int
    ) -> list[str]:
        async with self._conn() as conn:
            if any(m.dedup_key is not None for m in messages):
                async with conn.transaction():
                    return await _send.enqueue_dedup(
                        conn, self.sql, queue, messages, dedup_window_ms, self.pruned
                    )
            await _send.insert(conn, self.sql, queue, messages)
        return [m.id for m in messages]

    async def enqueue_in_transaction(
        self, conn: Any, queue: str, msgs: Sequence[Message], *, dedup_window_ms: int
    ) -> list[str]:
        return await _outbox.enqueue_in(self, conn, queue, msgs, dedup_window_ms)

    # -- leases --------------------------------------------------------------------

    @translated
    async def claim(
        self, queue: str, max_messages: int, lease_ms: int, consumer: str
    ) -> list[Delivery]:
        params = _claim_params(queue, max_messages, lease_ms, consumer)
        async with self._conn() as conn:
            rows = await fetch(conn, self.sql, "claim", params)
            return await self._claimed(conn, params, rows)

    async def _claimed(
        self, conn: Conn, params: dict[str, Any], rows: list[tuple[Any, ...]]
    ) -> list[Delivery]:
        """The deliveries of a claim's rows; expired leases resolved first when
        the claim found some (then it claims again)."""
        queue = params["queue"]
        if not rows:
            raise QueueNotFound(queue)
        max_attempts, expired = rows[0][:2]
        if expired:
            async with conn.transaction():
                await expire(conn, self.sql, queue, params["now"], max_attempts)
                again = {**params, "resolved": True}
                rows = await fetch(conn, self.sql, "claim", again)
        rows = [r[2:] for r in rows if r[2] is not None]
        rows.sort(key=lambda r: r[0])
        token, consumer = params["token"], params["consumer"]
        expires = from_ms(params["until"])
        return [
            Delivery(message_from_row(r), make_receipt(r[2], token), expires, consumer)
            for r in rows
        ]

    @translated
    async def ack_and_claim(
        self,
        deliveries: Sequence[Delivery],
        queue: str,
        max_messages: int,
        lease_ms: int,
        consumer: str,
    ) -> tuple[list[Delivery], list[Delivery]]:
        """The ack and the claim statements pipelined on one connection: one round
        trip, two transactions (the ack commits whatever the claim finds)."""
        if not deliveries:
            return [], await self.claim(queue, max_messages, lease_ms, consumer)
        keys, ack_params = _ack_params(deliveries)
        params = _claim_params(queue, max_messages, lease_ms, consumer)
        channel = {"channel": self.sql.channel}
        async with self._conn() as conn:
            async with conn.pipeline():
                acked = await conn.execute(self.sql["ack"], {**channel, **ack_params})
                claimed = await conn.execute(self.sql["claim"], {**channel, **params})
            lost = _lost(deliveries, keys, await acked.fetchall())
            return lost, await self._claimed(conn, params, await claimed.fetchall())

    @translated
    async def wait(self, queue: str, timeout: float) -> None:
        """Block until a notification for ``queue``, its next due time, or
        ``timeout`` seconds, whichever comes first."""
        listener = self._listener
        if not listener.running:
            await listener.start()
        event = listener.register(queue)
        try:
            async with self._conn() as conn:
                [(due,)] = await fetch(conn, self.sql, "next_due", {"queue": queue})
            if due is not None:
                timeout = min(timeout, (due - now_ms()) / 1000)
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), timeout)
        finally:
            listener.unregister(queue, event)

    @translated
    async def ack(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        if not deliveries:
            return []
        keys, params = _ack_params(deliveries)
        async with self._conn() as conn:
            rows = await fetch(conn, self.sql, "ack", params)
        return _lost(deliveries, keys, rows)

    def _held(self, delivery: Delivery) -> dict[str, Any]:
        mid, token = parse_receipt(delivery.receipt)
        return {"queue": delivery.queue, "id": mid, "token": token}

    @translated
    async def retry(
        self, delivery: Delivery, delay_ms: int, entry: HistoryEntry
    ) -> None:
        params = {
            **self._held(delivery),
            "due": now_ms() + delay_ms,
            "entry": dumps(entry.to_dict()),
        }
        async with self._conn() as conn:
            if not await fetch(conn, self.sql, "retry", params):
                raise await lost(conn, self.sql, delivery.queue, params["id"])

    @translated
    async def dead_letter(
        self, delivery: Delivery, reason: str, entry: HistoryEntry
    ) -> None:
        held = self._held(delivery)
        params = {
            "queue": delivery.queue,
            "ids": [held["id"]],
            "entries": [dumps(entry.to_dict())],
            "token": held["token"],
            "reason": reason,
            "now": now_ms(),
        }
        async with self._conn() as conn:
            if not await fetch(conn, self.sql, "bury", params):
                raise await lost(conn, self.sql, delivery.queue, held["id"])

    @translated
    async def release(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        keys = [(d.queue, *parse_receipt(d.receipt)) for d in deliveries]
        params = {
            "queues": [k[0] for k in keys],
            "ids": [k[1] for k in keys],
            "tokens": [k[2] for k in keys],
            "now": now_ms(),
        }
        async with self._conn() as conn:
            await fetch(conn, self.sql, "release", params)

    @translated
    async def extend(self, delivery: Delivery, lease_ms: int) -> Delivery:
        params = {**self._held(delivery), "due": now_ms() + lease_ms}
        async with self._conn() as conn:
            rows = await fetch(conn, self.sql, "extend", params)
            if not rows:
                raise await lost(conn, self.sql, delivery.queue, params["id"])
        return replace(delivery, lease_expires_at=from_ms(rows[0][0]))

    # -- inspection ----------------------------------------------------------------

    @translated
    async def peek(self, queue: str, limit: int) -> list[Message]:
        async with self._conn() as conn:
            await require_queue(conn, self.sql, queue)
            rows = await fetch(conn, self.sql, "peek", {"queue": queue, "limit": limit})
        return [message_from_row(r) for r in rows]

    @translated
    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        async with self._conn() as conn:
            return await _admin.stats(conn, self.sql, queues)

    @translated
    async def purge(self, queue: str, *, dead: bool) -> int:
        async with self._conn() as conn:
            await require_queue(conn, self.sql, queue)
            name = "purge_dead" if dead else "purge_messages"
            return await run(conn, self.sql, name, {"queue": queue})

    @translated
    async def counters(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        async with self._conn() as conn:
            return await _admin.counters(conn, self.sql, queues)

    @translated
    async def record_durations(
        self, queue: str, observations: Mapping[str, int], count: int, sum_ms: int
    ) -> None:
        cells = duration_cells(observations, count, sum_ms)
        async with self._conn() as conn:
            await _durations.record_durations(conn, self.sql, queue, cells)

    @translated
    async def durations(self, queues: Sequence[str]) -> dict[str, DurationHistogram]:
        async with self._conn() as conn:
            return await _durations.durations(conn, self.sql, queues)

    # -- worker registry -------------------------------------------------------------

    @translated
    async def put_worker(self, worker_id: str, record: str, expires_ms: int) -> None:
        params = {"id": worker_id, "record": record, "expires": expires_ms}
        async with self._conn() as conn:
            await run(conn, self.sql, "worker_put", params)

    @translated
    async def list_workers(self, now_ms: int) -> list[str]:
        async with self._conn() as conn:
            await run(conn, self.sql, "worker_prune", {"now": now_ms})
            rows = await fetch(conn, self.sql, "worker_list", {"now": now_ms})
        return [str(record) for (record,) in rows]

    @translated
    async def delete_worker(self, worker_id: str) -> None:
        async with self._conn() as conn:
            await run(conn, self.sql, "worker_delete", {"id": worker_id})

    # -- dead letters --------------------------------------------------------------

    @translated
    async def dead_letters(
        self, queue: str, query: DeadLetterQuery
    ) -> list[DeadLetter]:
        async with self._conn() as conn:
            return await _admin.dead_letters(conn, self.sql, queue, query)

    @translated
    async def redrive(
        self, queue: str, *, ids: Sequence[str] | None, to: str, limit: int
    ) -> list[str]:
        async with self._conn() as conn:
            return await _admin.redrive(conn, self.sql, queue, ids, to, limit)

    # -- topics --------------------------------------------------------------------

    @translated
    async def put_subscription(self, subscription: Subscription) -> Subscription:
        async with self._conn() as conn:
            return await _admin.put_subscription(conn, self.sql, subscription)

    @translated
    async def list_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        async with self._conn() as conn:
            return await _admin.list_subscriptions(conn, self.sql, topic)

    @translated
    async def delete_subscription(self, topic: str, name: str) -> bool:
        async with self._conn() as conn:
            return await _admin.delete_subscription(conn, self.sql, topic, name)

    @translated
    async def delete_queue(self, queue: str) -> bool:
        async with self._conn() as conn:
            return await _admin.delete_queue(conn, self.sql, queue)

    @translated
    async def record_publish(self, topic: str, copies: int) -> None:
        params = {"topic": topic, "unrouted": int(copies == 0)}
        async with self._conn() as conn:
            await run(conn, self.sql, "record_publish", params)

    @translated
    async def fan_out(self, topic: str, copies: Sequence[Message]) -> int:
        async with self._conn() as conn:
            return await _admin.fan_out(conn, self.sql, topic, copies)

    @translated
    async def list_topics(self) -> list[TopicInfo]:
        async with self._conn() as conn:
            return await _admin.list_topics(conn, self.sql)

    @translated
    async def sweep(self, queue: str) -> None:
        """Resolve expired leases of ``queue`` now."""
        async with self._conn() as conn:
            await _admin.resolve_expired(conn, self.sql, [queue], now_ms())


def _claim_params(
    queue: str, max_messages: int, lease_ms: int, consumer: str
) -> dict[str, Any]:
    now = now_ms()
    return {
        "queue": queue,
        "now": now,
        "token": new_token(),
        "until": now + lease_ms,
        "consumer": consumer,
        "limit": max_messages,
        "resolved": False,
    }


def _ack_params(
    deliveries: Sequence[Delivery],
) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
    keys = [(d.queue, *parse_receipt(d.receipt)) for d in deliveries]
    params = {
        "queues": [k[0] for k in keys],
        "ids": [k[1] for k in keys],
        "tokens": [k[2] for k in keys],
    }
    return keys, params


def _lost(
    deliveries: Sequence[Delivery],
    keys: list[tuple[str, str, str]],
    rows: list[tuple[Any, ...]],
) -> list[Delivery]:
    """The deliveries an ack did not delete (its rows are the deleted ones)."""
    gone = Counter((q, mid) for q, mid in rows)
    lost_ones: list[Delivery] = []
    for d, (q, mid, _) in zip(deliveries, keys, strict=True):
        if gone[q, mid] > 0:
            gone[q, mid] -= 1
        else:
            lost_ones.append(d)
    return lost_ones
