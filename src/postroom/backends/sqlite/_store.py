"""The synchronous SQLite operations: each call is one transaction.

The backend runs every method of :class:`Store` in its own thread, one at a time,
on one connection. Rules copied from ``memory.py``: nothing is deleted before an
ack, expired leases are resolved lazily (claim, stats, dead letters), and every
attempt leaves a history entry.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ...model.errors import QueueNotFound
from ...model.message import (
    Delivery,
    HistoryEntry,
    Message,
    QueuePolicy,
    now_ms,
)
from ...model.settlement import Burial, Rerun, Settlement
from .._common import lease_expired_entry, new_token, parse_receipt
from . import _pace as pace
from ._conn import QUERIES as Q
from ._conn import write
from ._records import (
    NOTHING,
    AckPlan,
    Leased,
    ack_plan,
    dumps,
    lease_lost,
    message_row,
)

__all__ = ["Store"]

_PRUNE_EVERY_MS = 60_000


class _SomeLost(Exception):
    """A batched ack matched fewer rows than deliveries (some leases were lost)."""


class Store:
    """Queue and message operations on one connection."""

    def __init__(
        self, conn: sqlite3.Connection, permit_due_ms: dict[str, int] | None = None
    ) -> None:
        self.conn = conn
        self._pruned: dict[str, int] = {}
        # The backend's Backend.permit_due_ms: set by claims of rate-limited queues.
        self.permit_due_ms = {} if permit_due_ms is None else permit_due_ms

    # -- queues --------------------------------------------------------------------

    def max_attempts(self, queue: str) -> int:
        """The queue's ``max_attempts``; raises :class:`QueueNotFound`."""
        return self._queue(queue)[1]

    def _queue(self, queue: str) -> tuple[str, int]:
        """The queue's policy (JSON) and ``max_attempts``; raises QueueNotFound."""
        row = self.conn.execute(Q["get_queue"], (queue,)).fetchone()
        if row is None:
            raise QueueNotFound(queue)
        return str(row[0]), int(row[1])

    def declare_queue(
        self, queue: str, policy: QueuePolicy, replace: bool
    ) -> QueuePolicy:
        """Create or update a queue; return the stored policy."""
        conn = self.conn
        if not replace:
            row = conn.execute(Q["get_queue"], (queue,)).fetchone()
            if row is not None:
                return QueuePolicy.from_dict(json.loads(row[0]))
        params = (queue, dumps(policy.to_dict()), policy.max_attempts)
        with write(conn):
            conn.execute(Q["upsert_queue" if replace else "insert_queue"], params)
            row = conn.execute(Q["get_queue"], (queue,)).fetchone()
        return QueuePolicy.from_dict(json.loads(row[0]))

    def get_policy(self, queue: str) -> QueuePolicy | None:
        """The stored policy, or ``None``."""
        row = self.conn.execute(Q["get_queue"], (queue,)).fetchone()
        return None if row is None else QueuePolicy.from_dict(json.loads(row[0]))

    def list_queues(self) -> list[str]:
        """Every queue name, sorted."""
        return [r[0] for r in self.conn.execute(Q["list_queues"]).fetchall()]

    # -- sending -------------------------------------------------------------------

    def enqueue(
        self, queue: str, messages: Sequence[Message], dedup_window_ms: int
    ) -> list[str]:
        """Store messages in one transaction; dedup keys as ``memory.py`` does."""
        conn = self.conn
        now = now_ms()
        with write(conn):
            self.max_attempts(queue)
            if all(m.dedup_key is None for m in messages):
                stored = conn.executemany(
                    Q["insert_message"], [message_row(queue, m) for m in messages]
                ).rowcount
                ids = [m.id for m in messages]
            else:
                ids, stored = self._enqueue_dedup(queue, messages, dedup_window_ms, now)
            if stored:
                conn.execute(Q["count_sent"], (stored, queue))
        return ids

    def _enqueue_dedup(
        self, queue: str, messages: Sequence[Message], window_ms: int, now: int
    ) -> tuple[list[str], int]:
        conn = self.conn
        if now - self._pruned.get(queue, 0) > _PRUNE_EVERY_MS:
            conn.execute(Q["dedup_prune"], (queue, now))
            self._pruned[queue] = now
        ids: list[str] = []
        stored = 0
        for m in messages:
            if m.dedup_key is not None:
                known = conn.execute(Q["dedup_get"], (queue, m.dedup_key)).fetchone()
                if known is not None and (known[1] > now or known[2]):
                    ids.append(known[0])
                    continue
                conn.execute(
                    Q["dedup_put"], (queue, m.dedup_key, m.id, now + window_ms)
                )
            stored += conn.execute(Q["insert_message"], message_row(queue, m)).rowcount
            ids.append(m.id)
        return ids, stored

    # -- leases --------------------------------------------------------------------

    def claim(
        self, queue: str, max_messages: int, lease_ms: int, consumer: str
    ) -> list[Delivery]:
        """Lease up to ``max_messages`` visible messages in one UPDATE ... RETURNING,
        as many as the queue's rate limit allows."""
        return self._lease(queue, max_messages, lease_ms, consumer).deliveries()

    def _lease(
        self, queue: str, max_messages: int, lease_ms: int, consumer: str
    ) -> Leased:
        """``claim`` up to the claimed rows (Python's part, building the
        deliveries, can then run after a settle's commit)."""
        conn = self.conn
        policy, max_attempts = self._queue(queue)
        now = now_ms()
        token, until = new_token(), now + lease_ms
        args: dict[str, object] = {"queue": queue, "now": now, "token": token}
        args |= {"until": until, "consumer": consumer, "limit": max_messages}
        rate = pace.rate_limit(policy)
        if rate is not None and pace.held_back(
            conn, queue, rate, now, max_messages, self.permit_due_ms
        ):
            return NOTHING
        # Alone, a claim of an empty queue ends here, before taking the lock;
        # within a transaction (a settle) the lock is held already.
        if (
            not conn.in_transaction
            and not conn.execute(Q["claimable"], args).fetchone()[0]
        ):
            return NOTHING
        with write(conn):
            self.expire(queue, now, max_attempts)
            allowed = (
                pace.permits(conn, queue, rate, now, max_messages) if rate else None
            )
            if allowed is not None:
                args["limit"] = allowed.granted
            rows = conn.execute(Q["claim"], args).fetchall()
            if allowed is not None:
                wait_ms = pace.spend(conn, queue, allowed, len(rows))
                self.permit_due_ms[queue] = now + wait_ms
        return Leased(rows, token, until, consumer)

    def expire(self, queue: str, now: int, max_attempts: int) -> None:
        """Resolve the queue's expired leases (call inside a write transaction)."""
        conn = self.conn
        rows = conn.execute(Q["expired"], (queue, now)).fetchall()
        if not rows:
            return
        requeue: list[tuple[int, str, int]] = []
        bury: list[tuple[int, HistoryEntry]] = []
        for seq, attempts, consumer in rows:
            entry = lease_expired_entry(now, consumer)
            if attempts >= max_attempts:
                bury.append((seq, entry))
            else:
                requeue.append((now, dumps(entry.to_dict()), seq))
        conn.executemany(Q["requeue_expired"], requeue)
        self.bury(queue, bury, "lease_expired", now)

    def bury(
        self, queue: str, rows: list[tuple[int, HistoryEntry]], reason: str, now: int
    ) -> None:
        """Move messages (by seq) to the dead letters, each with a final entry."""
        if not rows:
            return
        conn = self.conn
        conn.executemany(
            Q["bury"],
            [
                {
                    "seq": seq,
                    "reason": reason,
                    "error": dumps(e.error.to_dict()) if e.error else None,
                    "entry": dumps(e.to_dict()),
                    "now": now,
                }
                for seq, e in rows
            ],
        )
        conn.executemany(Q["delete_seq"], [(seq,) for seq, _ in rows])
        conn.execute(Q["count_dead_lettered"], (len(rows), queue))

    def _lost(self, queue: str, message_id: str) -> Exception:
        self.max_attempts(queue)
        return lease_lost(message_id)

    def ack(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Delete leased messages in one batch; return the deliveries whose lease was
        lost."""
        return self._ack(deliveries, ack_plan(deliveries))

    def _ack(self, deliveries: Sequence[Delivery], plan: AckPlan) -> list[Delivery]:
        conn = self.conn
        keys, deletes = plan
        try:
            with write(conn):
                for queue, pairs, n in deletes:
                    args = {"queue": queue, "keys": pairs}
                    if conn.execute(Q["ack_many"], args).rowcount != n:
                        raise _SomeLost
                    conn.execute(Q["count_acked"], (n, queue))
        except _SomeLost:
            # Rolled back: redo one by one to learn which leases were lost.
            rows = list(zip(deliveries, keys, strict=True))
            return self._one_by_one("ack", "count_acked", rows)
        return []

    def settle(
        self, batch: Settlement
    ) -> tuple[list[Delivery], list[Delivery] | Exception]:
        """Acks, retries, dead letters and the claim in one transaction; a
        failed claim (unknown queue) is returned, not raised, so the writes
        still commit. The acks' parameters are made before the transaction and
        the claimed deliveries after it: the write lock is held for the SQL
        alone."""
        plan = ack_plan(batch.acks) if batch.acks else None
        c = batch.claim
        leased = NOTHING
        with write(self.conn):
            lost = self._ack(batch.acks, plan) if plan else []
            if batch.reruns:
                lost += self.rerun(batch.reruns)
            if batch.burials:
                lost += self.bury_held(batch.burials)
            if c is not None:
                try:
                    leased = self._lease(
                        c.queue, c.max_messages, c.lease_ms, c.consumer
                    )
                except sqlite3.Error:
                    raise
                except Exception as exc:  # QueueNotFound: nothing written
                    return lost, exc
        return lost, leased.deliveries()

    def _one_by_one(
        self, query: str, count: str, rows: Sequence[tuple[Delivery, tuple[Any, ...]]]
    ) -> list[Delivery]:
        """Run ``query`` for each delivery with its parameters; count the rows it
        changed per queue with ``count``; return the deliveries it missed (their
        lease was lost)."""
        conn = self.conn
        lost: list[Delivery] = []
        done: Counter[str] = Counter()
        with write(conn):
            for d, params in rows:
                if conn.execute(Q[query], params).rowcount:
                    done[d.queue] += 1
                else:
                    lost.append(d)
            for queue, n in done.items():
                conn.execute(Q[count], (n, queue))
        return lost

    def rerun(self, reruns: Sequence[Rerun]) -> list[Delivery]:
        """Make messages visible after their delays, recording their entries;
        return the deliveries whose lease was lost."""
        now = now_ms()
        rows = [
            (
                r.delivery,
                (
                    now + r.delay_ms,
                    dumps(r.entry.to_dict()),
                    r.delivery.queue,
                    *parse_receipt(r.delivery.receipt),
                ),
            )
            for r in reruns
        ]
        return self._one_by_one("retry", "count_retried", rows)

    def bury_held(self, burials: Sequence[Burial]) -> list[Delivery]:
        """Move leased messages to the dead letters, recording their entries;
        return the deliveries whose lease was lost."""
        conn = self.conn
        lost: list[Delivery] = []
        rows: dict[tuple[str, str], list[tuple[int, HistoryEntry]]] = {}
        with write(conn):
            for b in burials:
                d = b.delivery
                row = conn.execute(
                    Q["held"], (d.queue, *parse_receipt(d.receipt))
                ).fetchone()
                if row is None:
                    lost.append(d)
                else:
                    rows.setdefault((d.queue, b.reason), []).append((row[0], b.entry))
            now = now_ms()
            for (queue, reason), held in rows.items():
                self.bury(queue, held, reason, now)
        return lost

    def retry(self, delivery: Delivery, delay_ms: int, entry: HistoryEntry) -> None:
        """Make the message visible after ``delay_ms``, recording ``entry``."""
        if self.rerun([Rerun(delivery, delay_ms, entry)]):
            raise self._lost(delivery.queue, delivery.id)

    def dead_letter(self, delivery: Delivery, reason: str, entry: HistoryEntry) -> None:
        """Move the leased message to the dead letters, recording ``entry``."""
        if self.bury_held([Burial(delivery, reason, entry)]):
            raise self._lost(delivery.queue, delivery.id)

    def release(self, deliveries: Sequence[Delivery]) -> None:
        """Give messages back now, the attempt uncounted; lost leases are skipped."""
        now = now_ms()
        params = [(now, d.queue, *parse_receipt(d.receipt)) for d in deliveries]
        with write(self.conn):
            self.conn.executemany(Q["release"], params)

    def extend(self, delivery: Delivery, lease_ms: int) -> int:
        """Move the lease's end to ``lease_ms`` from now; return it."""
        conn = self.conn
        mid, token = parse_receipt(delivery.receipt)
        until = now_ms() + lease_ms
        with write(conn):
            if not conn.execute(
                Q["extend"], (until, delivery.queue, mid, token)
            ).rowcount:
                raise self._lost(delivery.queue, mid)
        return until

    # -- inspection ----------------------------------------------------------------

    def resolve_expired(self, queue: str, now: int) -> None:
        """Resolve expired leases, taking the write lock only when there are some."""
        max_attempts = self.max_attempts(queue)
        if self.conn.execute(Q["expired"], (queue, now)).fetchone() is None:
            return
        with write(self.conn):
            self.expire(queue, now, max_attempts)
