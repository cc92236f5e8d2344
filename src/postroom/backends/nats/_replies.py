"""Requests whose replies the connection's read loop hands to them directly.

nats-py's ``request`` sends through its flusher task (the request reaches the
socket one event-loop turn later) and reads replies through a subscription whose
task hands each to its request (one turn more). :class:`Replies` is one wildcard
inbox subscription (``_INBOX.<nuid>.*``) of :class:`~._inbox.Client`, whose
replies the read loop resolves at once; a request may be written to the socket
at once (``at_once``), for a lone one that something waits for.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import nats.errors

from ._inbox import Client, parse_headers, status_of

__all__ = ["Replies"]


class Replies:
    """One connection's reply inbox and the requests waiting on it."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.prefix = ""
        self._sid: int | None = None
        self._waiting: dict[bytes, asyncio.Future[tuple[bytes, bytes | None]]] = {}
        self._next = itertools.count(1)

    async def _open(self) -> None:
        self.prefix = self.nc.new_inbox() + "."
        sub: Any = await self.nc.subscribe(self.prefix + "*")
        self._sid = sub._id
        self.nc.direct(sub._id, self._on_raw)

    def _on_raw(
        self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        future = self._waiting.pop(subject.rpartition(b".")[2], None)
        if future is not None and not future.done():
            future.set_result((data, headers))

    async def request(
        self,
        subject: str,
        payload: bytes,
        *,
        headers: dict[str, str] | None = None,
        timeout: float,
        at_once: bool = False,
    ) -> tuple[bytes, dict[str, str] | None]:
        """Send a request and return its reply's data and headers;
        :class:`nats.errors.NoRespondersError` when nobody listens,
        :class:`nats.errors.TimeoutError` after ``timeout`` seconds."""
        if self._sid is None:
            await self._open()
        token = str(next(self._next))
        key = token.encode()
        future = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            await self.nc.publish(
                subject, payload, reply=self.prefix + token, headers=headers
            )
            if at_once:
                self.nc.write_now()
            async with asyncio.timeout(timeout):
                data, raw = await future
        except TimeoutError:
            raise nats.errors.TimeoutError from None
        finally:
            self._waiting.pop(key, None)
        if status_of(raw) == "503":
            raise nats.errors.NoRespondersError
        return data, parse_headers(raw.decode("utf-8", "replace")) if raw else None
