"""The backend's own thread: one connection, one operation at a time, group commit.

Every blocking ``sqlite3`` call of a backend runs here, so the event loop never
waits on the disk or on another process's lock. Operations that queue up while
the thread is busy (a worker's concurrent retries, acks and claims; concurrent
sends) run together in one ``BEGIN IMMEDIATE ... COMMIT``: one fsync instead of
one each. Each operation opens a savepoint (see ``_conn.write``), so a failing
one (``LeaseLost``...) is rolled back alone. Nothing is reported as done before
the commit that made it durable.

Operations that only move leases or end them (claim, extend, release, ack)
commit with ``synchronous = NORMAL`` even when the database is set to ``FULL``:
losing one in a power cut only means a redelivery (the contract is at least
once), and the next durable commit syncs the log with them. Sends (the contract's
durability promise), retries and dead letters (their history) stay ``FULL``.

Checkpoints (copying the log back into the database, two fsyncs) mostly run in
a thread of their own instead of in a commit here (``_checkpoint.py``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import sqlite3
import threading
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

import anyio

from ._conn import begin_immediate

__all__ = ["Executor"]

T = TypeVar("T")

# Most operations committed together.
MAX_GROUP = 128

# (function, arguments, the caller's loop or None, its future, durable)
_Op = tuple[
    Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop | None, Any, bool
]
_LIGHT = {"extra": "normal", "full": "normal"}


def _settle(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def _deliver(op: _Op, result: Any, exc: BaseException | None) -> None:
    loop = op[2]
    if loop is None:  # a blocking caller waits on a plain future
        if exc is not None:
            op[3].set_exception(exc)
        else:
            op[3].set_result(result)
        return
    with contextlib.suppress(RuntimeError):  # the caller's loop is closed
        loop.call_soon_threadsafe(_settle, op[3], result, exc)


class Executor:
    """A thread that runs one backend's blocking operations in order."""

    def __init__(self, name: str, synchronous: str) -> None:
        self.conn: sqlite3.Connection | None = None
        # Called with the connection after each operation or group (the
        # backend's checkpoint requests, see _checkpoint.py).
        self.after: Callable[[sqlite3.Connection], None] | None = None
        self._modes = (synchronous, _LIGHT.get(synchronous, synchronous))
        self._mode = synchronous
        self._queue: SimpleQueue[_Op | None] = SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> T:
        """Run ``fn(*args)`` in the thread; a cancelled caller still waits for it
        (operations are short), so a claim is never lost between thread and loop.

        ``durable=False`` for operations whose loss in a power cut is harmless.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, args, loop, fut, durable))
        with anyio.CancelScope(shield=True):
            result = await fut
        return result

    def run_blocking(self, fn: Callable[..., T], *args: Any, durable: bool = True) -> T:
        """:meth:`run` for a thread that runs no event loop: it waits on a plain
        future, without an event loop's wake-up and task around the call."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((fn, args, None, fut, durable))
        return fut.result()

    async def stop(self) -> None:
        """Finish the queued operations and end the thread."""
        self._queue.put(None)
        await anyio.to_thread.run_sync(self._thread.join)

    def _serve(self) -> None:
        while True:
            op = self._queue.get()
            if op is None:
                return
            batch = [op]
            stop = False
            while len(batch) < MAX_GROUP:
                try:
                    nxt = self._queue.get_nowait()
                except Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            if len(batch) == 1 or self.conn is None:
                for one in batch:
                    self._alone(one)
            else:
                self._group(self.conn, batch)
            if self.after is not None and self.conn is not None:
                self.after(self.conn)
            if stop:
                return

    def _sync(self, durable: bool) -> None:
        """Set the commit's fsync level (outside any transaction)."""
        mode = self._modes[0 if durable else 1]
        if mode != self._mode and self.conn is not None:
            self.conn.execute(f"PRAGMA synchronous = {mode}")
            self._mode = mode

    def _alone(self, op: _Op) -> None:
        try:
            self._sync(op[4])
            result = op[0](*op[1])
        except BaseException as exc:
            _deliver(op, None, exc)
        else:
            _deliver(op, result, None)

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _group(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        try:
            self._sync(any(op[4] for op in batch))
            begin_immediate(conn)
            for op in batch:
                try:
                    outcomes.append((op[0](*op[1]), None))
                except sqlite3.Error:
                    raise
                except Exception as exc:  # rolled back to its savepoint
                    outcomes.append((None, exc))
            conn.execute("COMMIT")
        except sqlite3.Error:
            # A driver error may have rolled the whole transaction back: undo what
            # is left and run each operation on its own, so only the culprit fails.
            self._rollback(conn)
            for op in batch:
                self._alone(op)
            return
        except BaseException as exc:  # not an operation's own failure: fail them all
            self._rollback(conn)
            for op in batch:
                _deliver(op, None, exc)
            return
        for op, (result, error) in zip(batch, outcomes, strict=True):
            _deliver(op, result, error)
