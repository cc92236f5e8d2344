"""Checkpoints of the write-ahead log in a thread of their own.

SQLite copies the log back into the database file (a checkpoint, two fsyncs) in
the commit that finds the log at 1,000 pages or more, so every few dozen settles
of a busy worker one of them waited for the disk: 5-10 ms, in which the worker's
finished handlers waited for their acks and its free slots for new messages.

The backend's thread reports its commits here; once it has changed
``CHECKPOINT_CHANGES`` rows since the last request (some hundreds of log pages
for a worker's acks and claims), this thread runs a passive checkpoint on its own
connection. A passive checkpoint never waits for readers or writers (the
connection's busy timeout only serves to open it), nobody waits for it, and it
leaves the log for the next writer to start over, so the log seldom reaches
SQLite's own threshold, which stays in place for what this thread does not catch
(a burst of large messages, other processes' writes).
"""

from __future__ import annotations

import sqlite3
import threading

from ...model.errors import PostroomError
from ._conn import SqliteSettings, open_connection

__all__ = ["CHECKPOINT_CHANGES", "Checkpointer"]

# Rows changed by one backend between two checkpoint requests: about 1,000
# messages acked and claimed, 300-400 log pages (a worker's two processes stay
# under SQLite's 1,000 together).
CHECKPOINT_CHANGES = 2000


class Checkpointer:
    """Runs passive checkpoints of one database file when asked, in its thread
    (started at the first request)."""

    def __init__(self, settings: SqliteSettings, name: str) -> None:
        self._settings = settings
        self._name = name
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._requested = 0  # the connection's total_changes at the last request
        self.runs = 0  # checkpoints run so far

    def committed(self, conn: sqlite3.Connection) -> None:
        """After the backend's thread committed on ``conn``: ask for a checkpoint
        when enough was written since the last request."""
        changes = conn.total_changes
        if changes - self._requested < CHECKPOINT_CHANGES or self._closing:
            return
        self._requested = changes
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._serve, name=self._name, daemon=True
            )
            self._thread.start()
        self._wake.set()

    def _serve(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._wake.wait()
                self._wake.clear()
                if self._closing:
                    return
                # Opening (its first read may find the log busy) or checkpointing
                # failed, or another process checkpoints: the next request tries
                # again, and SQLite's own threshold still holds meanwhile.
                try:
                    if conn is None:
                        conn = open_connection(self._settings)
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except (sqlite3.Error, PostroomError):
                    continue
                self.runs += 1
        finally:
            if conn is not None:
                conn.close()

    def close(self) -> None:
        """End the thread (blocking: it finishes a checkpoint under way)."""
        self._closing = True
        thread, self._thread = self._thread, None
        if thread is not None:
            self._wake.set()
            thread.join()
