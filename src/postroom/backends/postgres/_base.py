"""The PostgreSQL backend off the send/lease path: the connection pool, queue
policies, inspection, the worker registry, dead letters and topics."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from ...model.errors import BackendError
from ...model.message import (
    DeadLetter,
    Message,
    QueuePolicy,
    QueueStats,
    Subscription,
    now_ms,
)
from ...model.order import burst
from ...model.queries import DeadLetterQuery
from ...model.stats import DurationHistogram, TopicInfo, duration_cells
from ..base import Backend
from . import _admin, _durations
from ._conn import PostgresSettings, init_schema, load_queries, translated
from ._listen import Listener
from ._ops import Conn, Sql, fetch, require_queue, run
from ._records import message_from_row

__all__ = ["PostgresBase"]


class PostgresBase(Backend):
    """What :class:`~postroom.backends.postgres.PostgresBackend` builds on."""

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
        rate = policy.rate_limit
        params = {
            "queue": queue,
            "policy": Jsonb(policy.to_dict()),
            "max_attempts": policy.max_attempts,
            "rate": rate,
            "burst": None if rate is None else burst(rate),
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
        params = {"queue": queue}
        async with self._conn() as conn:
            await require_queue(conn, self.sql, queue)
            if dead:
                return await run(conn, self.sql, "purge_dead", params)
            async with conn.transaction():
                await fetch(conn, self.sql, "purge_lock", params)
                return await run(conn, self.sql, "purge_messages", params)

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

    # -- worker registry -----------------------------------------------------------

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

    @translated
    async def put_sample(self, bucket_ms: int, record: str, expires_ms: int) -> bool:
        params = {"bucket": bucket_ms, "record": record, "expires": expires_ms}
        async with self._conn() as conn:
            return await run(conn, self.sql, "sample_put", params) == 1

    @translated
    async def list_samples(self, since_ms: int, now_ms: int) -> list[tuple[int, str]]:
        async with self._conn() as conn:
            await run(conn, self.sql, "sample_prune", {"now": now_ms})
            params = {"since": since_ms, "now": now_ms}
            rows = await fetch(conn, self.sql, "sample_list", params)
        return [(int(bucket), str(record)) for bucket, record in rows]

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
