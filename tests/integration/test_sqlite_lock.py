"""SQLite: waiting for another process's write lock, up to the busy timeout."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

import postroom
from postroom.backends.sqlite._conn import (
    SqliteSettings,
    begin_immediate,
    init_schema,
    open_connection,
)


def _holder(path: str) -> sqlite3.Connection:
    """Another connection that holds the write lock until it commits."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_begin_waits_for_the_lock_then_takes_it(tmp_path: Path) -> None:
    settings = SqliteSettings.from_url(f"sqlite:///{tmp_path}/l.db?busy_timeout=60")
    conn = open_connection(settings)
    init_schema(conn, settings.path)
    holder = _holder(settings.path)
    released = threading.Event()

    def release() -> None:
        holder.execute("COMMIT")
        released.set()

    timer = threading.Timer(0.2, release)
    timer.start()
    try:
        begin_immediate(conn)
        assert released.is_set() and conn.in_transaction
        conn.execute("ROLLBACK")
    finally:
        timer.join()
        holder.close()
    # The other statements keep SQLite's own busy handler, with the URL's timeout.
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 60_000
    conn.close()


def test_begin_gives_up_at_the_busy_timeout(tmp_path: Path) -> None:
    settings = SqliteSettings.from_url(f"sqlite:///{tmp_path}/l.db?busy_timeout=0.2")
    conn = open_connection(settings)
    init_schema(conn, settings.path)
    holder = _holder(settings.path)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            begin_immediate(conn)
        assert not conn.in_transaction
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 200
    finally:
        holder.close()
    begin_immediate(conn)  # free again
    conn.execute("ROLLBACK")
    conn.close()


def test_send_past_the_busy_timeout_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/l.db?busy_timeout=0.2"
    with postroom.connect(url) as c:
        c.declare_queue("q")
        holder = _holder(f"{tmp_path}/l.db")
        try:
            with pytest.raises(postroom.BackendError, match="stayed locked"):
                c.send("q", 1)
        finally:
            holder.close()
        c.send("q", 2)
        assert [d.body for d in c.receive("q", max_messages=10)] == [b"2"]
