"""Waking consumers that wait on an SQLite queue, without busy polling the table.

Two sources wake a waiter:

- **this process**: every send, retry, release or redrive through any
  ``SqliteBackend`` of the same file calls :func:`notify`, which resolves the
  waiters of that queue at once;
- **other processes**: ``PRAGMA data_version`` changes whenever another
  connection commits. It is read on a dedicated connection (a few microseconds, no
  table access, no lock), and only when it changed does each waiter look up its
  queue's next due time. On Linux an inotify watch on the write-ahead log says
  when anyone wrote it. A commit writes the log first and makes itself visible
  (fsync, then the index update) a little later, so after a write
  ``data_version`` is read every ``POLL_AFTER_WRITE`` until it changes (at most
  ``FAST_WINDOW`` seconds; ``SHORT_WINDOW`` when the change was already visible,
  in case another commit's write came just before), and otherwise only every
  ``SAFETY_INTERVAL``: an idle consumer costs nothing measurable. Without inotify
  it is read every ``POLL_WITHOUT_INOTIFY``. The URL's ``poll_interval``
  overrides both intervals.

A waiter also returns when the queue's next delayed message or lease comes due.
The watcher's connection has a zero busy timeout: a read that would block counts
as a wake-up (spurious wake-ups are allowed), so the event loop never waits on a
lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Iterable

from ...model.message import now_ms
from ._conn import QUERIES as Q
from ._conn import SqliteSettings, open_connection
from ._inotify import FileWatch, watch_file

__all__ = ["Watcher", "notify"]

_LOCAL = "local"
_POLL = "poll"
_TIMER = "timer"

# data_version reads after a log write (inotify), and all the time without it.
POLL_AFTER_WRITE = 0.001
POLL_WITHOUT_INOTIFY = 0.005
# Fast polling after a log write lasts until data_version changes, at most this
# long (covers slow fsyncs), or this long when the change was visible at once.
FAST_WINDOW = 0.1
SHORT_WINDOW = 0.02
# With inotify, the period of the safety poll that catches anything it missed.
SAFETY_INTERVAL = 0.25

_registry: dict[str, set[_Waiter]] = {}
_registry_lock = threading.Lock()


class _Waiter:
    """One ``wait()`` call: a future resolved with the reason it woke."""

    __slots__ = ("future", "loop", "queue")

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: str) -> None:
        self.loop = loop
        self.queue = queue
        self.future: asyncio.Future[str] = loop.create_future()

    def wake(self, reason: str) -> None:
        """Resolve the current future (on the waiter's loop)."""
        if not self.future.done():
            self.future.set_result(reason)


def notify(path: str, queues: Iterable[str]) -> None:
    """Wake this process's waiters of ``queues`` on the database at ``path``."""
    wanted = set(queues)
    with _registry_lock:
        waiters = [w for w in _registry.get(path, ()) if w.queue in wanted]
    for w in waiters:
        with contextlib.suppress(RuntimeError):  # a closed loop: waiter gone
            w.loop.call_soon_threadsafe(w.wake, _LOCAL)


class _Poller:
    """The data_version timer of one event loop and the waiters on that loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.waiters: set[_Waiter] = set()
        self.version: int | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.watch: FileWatch | None = None
        self.fast_until = 0.0
        self.settle: int | None = None  # fast polling ends when the version leaves it
        self.interval = POLL_WITHOUT_INOTIFY


class Watcher:
    """Wake-ups of one backend: local notifications plus a data_version poll."""

    def __init__(self, settings: SqliteSettings) -> None:
        self.path = settings.path
        self._interval = settings.poll_interval
        self._settings = settings
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._pollers: dict[asyncio.AbstractEventLoop, _Poller] = {}

    def open(self) -> None:
        """Open the watcher's connection (never blocks on locks)."""
        self._conn = open_connection(self._settings, busy=False)

    def close(self) -> None:
        """Close the connection and stop the timers."""
        for poller in list(self._pollers.values()):
            with contextlib.suppress(RuntimeError):  # its loop may be closed
                self._stop(poller)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _read_version(self) -> int | None:
        """``PRAGMA data_version`` (``None`` when the read failed: treat as changed)."""
        with self._lock:
            if self._conn is None:
                return None
            try:
                return int(self._conn.execute("PRAGMA data_version").fetchall()[0][0])
            except sqlite3.Error:
                return None

    def _next_due(self, queue: str) -> int | None:
        """The queue's next due time; ``0`` (due now) when the read failed."""
        with self._lock:
            if self._conn is None:
                return 0
            try:
                row = self._conn.execute(Q["next_due"], {"queue": queue}).fetchall()[0]
            except sqlite3.Error:
                return 0
        dues = [d for d in row if d is not None]
        return min(dues) if dues else None

    def _check(self, poller: _Poller) -> int | None:
        """Wake every waiter of the poller when data_version changed; return it."""
        version = self._read_version()
        if version is None or version != poller.version:
            poller.version = version
            for w in list(poller.waiters):
                w.wake(_POLL)
        return version

    def _schedule(self, poller: _Poller, delay: float) -> None:
        loop = poller.loop
        if poller.timer is not None:
            if poller.timer.when() <= loop.time() + delay:
                return
            poller.timer.cancel()
        poller.timer = loop.call_later(delay, self._tick, poller)

    def _tick(self, poller: _Poller) -> None:
        poller.timer = None
        if not poller.waiters:
            return
        version = self._check(poller)
        if version is None or version != poller.settle:
            poller.fast_until = 0.0  # the awaited commit is visible
        fast = poller.watch is None or poller.loop.time() < poller.fast_until
        self._schedule(poller, poller.interval if fast else SAFETY_INTERVAL)

    def _written(self, poller: _Poller) -> None:
        """The log was written: look now, then poll fast until the commit shows."""
        assert poller.watch is not None
        poller.watch.drain()
        if not poller.waiters:
            return
        before = poller.version
        version = self._check(poller)
        window = FAST_WINDOW if version == before else SHORT_WINDOW
        poller.fast_until = poller.loop.time() + window
        poller.settle = version
        self._schedule(poller, poller.interval)

    def _start(self, loop: asyncio.AbstractEventLoop) -> _Poller:
        poller = self._pollers[loop] = _Poller(loop)
        poller.watch = watch_file(self.path + "-wal")
        if poller.watch is not None:
            loop.add_reader(poller.watch.fd, self._written, poller)
            poller.interval = POLL_AFTER_WRITE
        if self._interval is not None:
            poller.interval = self._interval
        return poller

    def _stop(self, poller: _Poller) -> None:
        if poller.timer is not None:
            poller.timer.cancel()
            poller.timer = None
        if poller.watch is not None:
            if not poller.loop.is_closed():
                poller.loop.remove_reader(poller.watch.fd)
            poller.watch.close()
            poller.watch = None
        if self._pollers.get(poller.loop) is poller:
            del self._pollers[poller.loop]

    def _join(self, waiter: _Waiter) -> _Poller:
        """Register a waiter; take its baseline version before it reads the queue."""
        for gone in [p for p in self._pollers.values() if p.loop.is_closed()]:
            self._stop(gone)
        poller = self._pollers.get(waiter.loop) or self._start(waiter.loop)
        version = self._read_version()
        if version is None or version != poller.version:
            # Older waiters compared against an older baseline: let them re-check.
            for w in poller.waiters:
                w.wake(_POLL)
            poller.version = version
        poller.waiters.add(waiter)
        fast = poller.watch is None
        self._schedule(poller, poller.interval if fast else SAFETY_INTERVAL)
        with _registry_lock:
            _registry.setdefault(self.path, set()).add(waiter)
        return poller

    def _leave(self, poller: _Poller, waiter: _Waiter) -> None:
        poller.waiters.discard(waiter)
        if not poller.waiters and poller.timer is not None:
            # The watch stays until the backend closes: closing an inotify
            # descriptor waits for the kernel (about 10 ms of the loop's time).
            poller.timer.cancel()
            poller.timer = None
        with _registry_lock:
            waiters = _registry.get(self.path)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del _registry[self.path]

    async def wait(self, queue: str, timeout: float) -> None:
        """Return when ``queue`` may have work, or after ``timeout`` seconds."""
        if timeout <= 0:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        waiter = _Waiter(loop, queue)
        poller = self._join(waiter)
        try:
            while True:
                due = self._next_due(queue)
                until = deadline
                if due is not None:
                    until = min(until, loop.time() + (due - now_ms()) / 1000)
                if until <= loop.time():
                    return
                timer = loop.call_at(until, waiter.wake, _TIMER)
                try:
                    reason = await waiter.future
                finally:
                    timer.cancel()
                if reason != _POLL:
                    return
                waiter.future = loop.create_future()
        finally:
            self._leave(poller, waiter)
