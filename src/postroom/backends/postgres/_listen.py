"""Wake-ups for waiting consumers: one LISTEN connection per backend.

Every statement that makes a message visible calls ``pg_notify(channel, queue)``
in its own transaction, so the notification arrives when (and only when) the
change is committed. The listener reads the channel on a dedicated connection
and sets the events of the consumers waiting on that queue. Messages that
become visible by the clock (a delay, a lease running out) notify nobody: the
waiter's timeout is cut to the queue's next due time instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import psycopg
from psycopg import sql

__all__ = ["Listener"]

log = logging.getLogger(__name__)


class Listener:
    """Dispatches the notifications of one channel to per-queue waiters."""

    def __init__(self, conninfo: str, channel: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._waiters: dict[str, set[asyncio.Event]] = {}

    @property
    def running(self) -> bool:
        """Whether notifications are being received."""
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Connect and LISTEN, unless already running (idempotent)."""
        async with self._lock:
            if self.running:
                return
            await self._close_conn()
            conn = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True
            )
            try:
                ident = sql.Identifier(self._channel)
                await conn.execute(sql.SQL("LISTEN {}").format(ident))
            except BaseException:
                await conn.close()
                raise
            self._conn = conn
            self._task = asyncio.create_task(self._run(conn))

    async def _run(self, conn: psycopg.AsyncConnection[Any]) -> None:
        try:
            async for note in conn.notifies():
                self._wake(note.payload)
        except Exception as exc:  # the connection broke (or worse): never silently
            log.warning("postroom LISTEN connection lost (%s); reconnecting", exc)
        finally:
            # Waiters fall back to their own timeouts; the next wait() reconnects.
            for events in self._waiters.values():
                for event in events:
                    event.set()

    def _wake(self, queue: str) -> None:
        for event in self._waiters.get(queue, ()):
            event.set()

    def register(self, queue: str) -> asyncio.Event:
        """An event set when ``queue`` is notified; call :meth:`unregister` after."""
        event = asyncio.Event()
        self._waiters.setdefault(queue, set()).add(event)
        return event

    def unregister(self, queue: str, event: asyncio.Event) -> None:
        """Stop notifying ``event``."""
        events = self._waiters.get(queue)
        if events is not None:
            events.discard(event)
            if not events:
                del self._waiters[queue]

    async def _close_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

    async def close(self) -> None:
        """Stop listening and close the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, psycopg.Error):
                await task
        await self._close_conn()
