"""SQLite: a worker's settle (acks and the next claim) and the deliveries it builds."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

import postroom
from postroom.backends._common import make_receipt
from postroom.backends.sqlite import SqliteBackend, _inspect, _records
from postroom.backends.sqlite import _checkpoint as checkpoint_module
from postroom.backends.sqlite import _store as store_module
from postroom.backends.sqlite._checkpoint import CHECKPOINT_CHANGES, Checkpointer
from postroom.backends.sqlite._conn import SqliteSettings, init_schema, open_connection
from postroom.backends.sqlite._records import deliveries_from_rows, message_from_row
from postroom.backends.sqlite._store import Store
from postroom.model.message import Delivery, QueuePolicy, from_ms
from postroom.model.settlement import Claim, Settlement


def _store(tmp_path: Path) -> Store:
    settings = SqliteSettings.from_url(f"sqlite:///{tmp_path}/s.db")
    conn = open_connection(settings)
    init_schema(conn, settings.path)
    store = Store(conn)
    store.declare_queue("q", QueuePolicy(max_attempts=3), True)
    return store


class _Counting:
    """A connection that counts the statements run through it, by kind (one
    per row of an ``executemany``)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.runs: Counter[str] = Counter()

    def _count(self, sql: str, times: int) -> None:
        code = [line for line in sql.splitlines() if not line.startswith("--")]
        self.runs[code[0].split()[0].upper()] += times

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self._count(sql, 1)
        return self.conn.execute(sql, *args)

    def executemany(self, sql: str, rows: Iterable[Any]) -> sqlite3.Cursor:
        rows = list(rows)
        self._count(sql, len(rows))
        return self.conn.executemany(sql, rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


@pytest.mark.parametrize("batch", [2, 40])
def test_settle_runs_the_same_statements_whatever_the_batch(
    tmp_path: Path, batch: int
) -> None:
    store = _store(tmp_path)
    with postroom.connect(f"sqlite:///{tmp_path}/s.db") as c:
        c.send_many("q", list(range(2 * batch)))
    got = store.claim("q", batch, 60_000, "me")
    counting = _Counting(store.conn)
    store.conn = counting  # type: ignore[assignment]
    lost, claimed = store.settle(Settlement(got, claim=Claim("q", batch, 60_000, "me")))
    store.conn = counting.conn
    assert lost == [] and len(claimed) == batch
    assert not {d.id for d in got} & {d.id for d in claimed}
    # One DELETE for the acks (it was one per ack): 11 statements in all, and
    # the two PRAGMA busy_timeout around BEGIN IMMEDIATE (see _conn.py).
    assert counting.runs["DELETE"] == 1
    assert sum(counting.runs.values()) == 13
    assert _inspect.counters(store, ["q"])["q"]["acked"] == batch
    store.conn.close()


def test_settle_reports_exactly_the_lost_leases_of_a_batch(tmp_path: Path) -> None:
    store = _store(tmp_path)
    store.declare_queue("r", QueuePolicy(), True)
    with postroom.connect(f"sqlite:///{tmp_path}/s.db") as c:
        c.send_many("q", ["a", "b", "c"])
        c.send_many("r", ["x", "y"])
    a, b, c_ = store.claim("q", 3, 60_000, "me")
    x, y = store.claim("r", 2, 60_000, "me")
    assert store.ack([b]) == []  # acked already: its second ack is lost
    forged = Delivery(a.message, make_receipt(a.id, "0" * 16), a.lease_expires_at)
    lost, claimed = store.settle(Settlement([a, b, c_, x, y, a, forged]))
    # The duplicate of a is lost too: its message is gone by then.
    assert sorted(d.receipt for d in lost) == sorted(
        [b.receipt, a.receipt, forged.receipt]
    )
    assert claimed == []
    counts = _inspect.counters(store, ["q", "r"])
    assert (counts["q"]["acked"], counts["r"]["acked"]) == (3, 2)
    assert _inspect.peek(store, "q", 10) == _inspect.peek(store, "r", 10) == []
    store.conn.close()


def test_deliveries_from_rows_equal_the_dataclasses_built_field_by_field() -> None:
    at = 1_796_516_529_185
    rows = [
        (1, "q", "01A", b"body", '{"k":"v"}', at, at + 5, 1, None, 0, None, 0),
        (2, "q", "01B", b"\x00\xff", "{}", at, at, 3, "key", 2, "group-1", 7),
    ]
    built = deliveries_from_rows(rows, "feedbeef00112233", from_ms(at + 60_000), "w1")
    expected = [
        Delivery(
            message_from_row(r),
            make_receipt(r[2], "feedbeef00112233"),
            from_ms(at + 60_000),
            "w1",
        )
        for r in rows
    ]
    assert built == expected
    assert built[1].message.group == "group-1" and built[1].message.priority == 7
    # Each delivery has a headers dict of its own.
    built[0].message.headers["k"] = "changed"
    assert deliveries_from_rows(rows, "t", from_ms(at), "")[0].headers == {"k": "v"}


def test_settle_holds_the_write_lock_for_the_sql_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path)
    with postroom.connect(f"sqlite:///{tmp_path}/s.db") as c:
        c.send_many("q", list(range(6)))
    got = store.claim("q", 3, 60_000, "me")
    seen: list[tuple[str, bool]] = []

    def spy(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            seen.append((name, store.conn.in_transaction))
            return real(*args)

        return call

    monkeypatch.setattr(store_module, "ack_plan", spy("acks", store_module.ack_plan))
    monkeypatch.setattr(
        _records, "deliveries_from_rows", spy("claim", _records.deliveries_from_rows)
    )
    lost, claimed = store.settle(Settlement(got, claim=Claim("q", 3, 60_000, "me")))
    assert lost == [] and len(claimed) == 3
    # The acks' parameters are made before BEGIN, the deliveries after COMMIT.
    assert seen == [("acks", False), ("claim", False)]
    store.conn.close()


async def _drain_and_watch_checkpoints(url: str, n: int) -> tuple[int, list[str]]:
    async with postroom.connect_async(url) as c:
        await c.declare_queue("q")
        await c.send_many("q", list(range(n)))
        got = await c.receive("q", max_messages=100)
        while got:
            got = (await c.settle(got, receive="q", max_messages=100)).received
        backend = c.backend
        assert isinstance(backend, SqliteBackend)
        checkpointer = backend._checkpointer
        assert checkpointer is not None
        threads = [t.name for t in threading.enumerate()]
        for _ in range(500):  # the thread takes its request a moment later
            if checkpointer.runs:
                break
            await asyncio.sleep(0.01)
        return checkpointer.runs, threads


def test_a_drain_is_checkpointed_in_a_thread_of_its_own(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    n = CHECKPOINT_CHANGES  # sent, then acked and claimed: 3 changes each
    runs, threads = asyncio.run(_drain_and_watch_checkpoints(url, n))
    assert runs >= 1
    assert f"postroom-checkpoint:{tmp_path}/c.db" in threads
    # Closed with its backend.
    assert not [t for t in threading.enumerate() if "postroom-checkpoint" in t.name]


class _Changes:
    """Stands for the backend's connection: only its count of changed rows."""

    total_changes = 0


def test_the_checkpoint_thread_outlives_a_failed_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = SqliteSettings.from_url(f"sqlite:///{tmp_path}/k.db")
    first = open_connection(settings)
    init_schema(first, settings.path)
    first.close()
    real = checkpoint_module.open_connection
    opened: list[bool] = []

    def flaky(settings: SqliteSettings) -> sqlite3.Connection:
        opened.append(True)
        if len(opened) == 1:  # as when another process holds the log's lock
            raise sqlite3.OperationalError("database is locked")
        return real(settings)

    def request_and_wait(done: Callable[[], bool]) -> None:
        conn.total_changes += CHECKPOINT_CHANGES
        checkpointer.committed(conn)  # type: ignore[arg-type]
        for _ in range(500):  # the thread takes its request a moment later
            if done():
                return
            threading.Event().wait(0.01)

    monkeypatch.setattr(checkpoint_module, "open_connection", flaky)
    checkpointer = Checkpointer(settings, "postroom-checkpoint:test")
    conn = _Changes()
    try:
        request_and_wait(lambda: len(opened) == 1)
        request_and_wait(lambda: checkpointer.runs == 1)
    finally:
        checkpointer.close()
    assert len(opened) == 2 and checkpointer.runs == 1
