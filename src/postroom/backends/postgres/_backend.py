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
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ...model.errors import QueueNotFound
from ...model.message import (
    Delivery,
    HistoryEntry,
    Message,
    from_ms,
    now_ms,
)
from ...model.settlement import Burial, Rerun, Settlement
from .._common import make_receipt, new_token, parse_receipt
from ..base import ORDERED, Capabilities
from . import _outbox, _send
from ._base import PostgresBase
from ._conn import translated
from ._ops import (
    Conn,
    Grouped,
    execute_grouped,
    expire,
    fetch,
    fetch_grouped,
    lost,
    pipeline,
    unblock_missed,
)
from ._records import dumps, message_from_row

__all__ = ["PostgresBackend"]


class PostgresBackend(PostgresBase):
    """Durable, multi-process backend on a PostgreSQL (>= 13) database."""

    capabilities = Capabilities(
        native_wakeups=True,
        transactional_send=True,
        worker_registry=True,
        samples=True,
        **ORDERED,
    )

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
        permit = rows[0][2]
        if permit is not None:
            self.permit_due_ms[queue] = permit
        elif self.permit_due_ms:
            self.permit_due_ms.pop(queue, None)
        rows = [r[3:] for r in rows if r[3] is not None]
        rows.sort(key=_delivery_order)
        token, consumer = params["token"], params["consumer"]
        expires = from_ms(params["until"])
        return [
            Delivery(message_from_row(r), make_receipt(r[2], token), expires, consumer)
            for r in rows
        ]

    @translated
    async def settle(self, batch: Settlement) -> tuple[list[Delivery], list[Delivery]]:
        """The ack, retry, dead letter and claim statements pipelined on one
        connection: one round trip (writes on groups in their own transaction
        blocks, see ``execute_grouped``; the others commit with the claim)."""
        c = batch.claim
        keys, ack_params = _ack_params(batch.acks)
        writes: list[Grouped] = [("ack", ack_params, _groups(batch.acks))]
        writes += [("retry", _rerun_params(r), []) for r in batch.reruns]
        writes += [
            ("bury", _bury_params(b), _groups([b.delivery])) for b in batch.burials
        ]
        params: dict[str, Any] = {}
        if c is not None:
            params = _claim_params(c.queue, c.max_messages, c.lease_ms, c.consumer)
            writes.append(("claim", params, []))
        async with self._conn() as conn:
            async with pipeline(conn):
                curs = [await execute_grouped(conn, self.sql, w) for w in writes]
            acked = await curs[0].fetchall()
            lost = _lost(batch.acks, keys, acked)
            changed = [(r[0], r[2]) for r in acked]
            failed = [r.delivery for r in batch.reruns]
            failed += [b.delivery for b in batch.burials]
            for d, cur in zip(failed, curs[1 : 1 + len(failed)], strict=True):
                rows = await cur.fetchall()
                if not rows:
                    lost.append(d)
                changed += [(d.queue, r[1]) for r in rows if len(r) > 1]
            claimed = [] if c is None else await curs[-1].fetchall()
            locked = [g for w in writes for g in w[2]]
            await unblock_missed(conn, self.sql, changed, locked)
            if c is None:
                return lost, []
            return lost, await self._claimed(conn, params, claimed)

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
            groups = _groups(deliveries)
            rows = await fetch_grouped(conn, self.sql, ("ack", params, groups))
            changed = [(r[0], r[2]) for r in rows]
            await unblock_missed(conn, self.sql, changed, groups)
        return _lost(deliveries, keys, rows)

    async def _on_lease(
        self,
        delivery: Delivery,
        name: str,
        params: dict[str, Any],
        *,
        grouped: bool = False,
    ) -> list[tuple[Any, ...]]:
        """The rows of statement ``name`` on the lease of ``delivery`` (``grouped``:
        a statement that may change its group); none back means the lease was not
        held: ``LeaseLost`` (``QueueNotFound`` first)."""
        groups = _groups([delivery]) if grouped else []
        async with self._conn() as conn:
            rows = await fetch_grouped(conn, self.sql, (name, params, groups))
            if not rows:
                raise await lost(conn, self.sql, delivery.queue, delivery.id)
            if grouped:  # rows of (id, group)
                changed = [(delivery.queue, r[1]) for r in rows]
                await unblock_missed(conn, self.sql, changed, groups)
        return rows

    @translated
    async def retry(
        self, delivery: Delivery, delay_ms: int, entry: HistoryEntry
    ) -> None:
        params = _rerun_params(Rerun(delivery, delay_ms, entry))
        await self._on_lease(delivery, "retry", params)

    @translated
    async def dead_letter(
        self, delivery: Delivery, reason: str, entry: HistoryEntry
    ) -> None:
        params = _bury_params(Burial(delivery, reason, entry))
        await self._on_lease(delivery, "bury", params, grouped=True)

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
        params = {**_held(delivery), "due": now_ms() + lease_ms}
        rows = await self._on_lease(delivery, "extend", params)
        return replace(delivery, lease_expires_at=from_ms(rows[0][0]))


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


def _held(delivery: Delivery) -> dict[str, Any]:
    mid, token = parse_receipt(delivery.receipt)
    return {"queue": delivery.queue, "id": mid, "token": token}


def _rerun_params(r: Rerun) -> dict[str, Any]:
    return {
        **_held(r.delivery),
        "due": now_ms() + r.delay_ms,
        "entry": dumps(r.entry.to_dict()),
    }


def _bury_params(b: Burial) -> dict[str, Any]:
    held = _held(b.delivery)
    return {
        "queue": held["queue"],
        "ids": [held["id"]],
        "entries": [dumps(b.entry.to_dict())],
        "token": held["token"],
        "reason": b.reason,
        "now": now_ms(),
    }


def _delivery_order(row: tuple[Any, ...]) -> tuple[int, int]:
    """A claimed row's place in the claim's answer: priority, then send order."""
    return -row[11], row[0]


def _groups(deliveries: Sequence[Delivery]) -> list[tuple[str, str | None]]:
    """The (queue, group) of each delivery."""
    return [(d.queue, d.message.group) for d in deliveries]


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
    gone = Counter((r[0], r[1]) for r in rows)
    lost_ones: list[Delivery] = []
    for d, (q, mid, _) in zip(deliveries, keys, strict=True):
        if gone[q, mid] > 0:
            gone[q, mid] -= 1
        else:
            lost_ones.append(d)
    return lost_ones
