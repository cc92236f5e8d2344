"""Inboxes that pull requests' replies come to, kept from one request to the next.

A pull request's messages and its closing status (404, 408, 409) come to the
inbox named as its reply subject. An :class:`Inbox` is one subscription whose
messages the connection's read loop hands straight to the request it serves
(:class:`Pull`, see :class:`Client`): no queue and no task between the socket
and the request, and no nats-py message object; the ``NATS/1.0`` header block is
read directly. Once the server has ended a request (its status came, or the
batch is full), the inbox serves the next one: no SUB and UNSUB per request. One
whose request was given up on (the server never ended it) is unsubscribed. A
message that comes when the inbox serves no request, or another consumer's, is
handed back at once (``-NAK``) instead of waiting for its AckWait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import nats.errors
from nats.aio.client import Client as NatsClient

__all__ = ["Client", "Direct", "Inbox", "Pull", "Pulled", "parse_headers", "status_of"]


def parse_headers(block: str) -> dict[str, str] | None:
    """The headers of a ``NATS/1.0`` block (its first line is skipped)."""
    headers: dict[str, str] = {}
    for line in block.split("\r\n")[1:]:
        key, sep, value = line.partition(":")
        if sep:
            headers[key.strip()] = value.strip()
    return headers or None


def status_of(headers: bytes | None) -> str | None:
    """The status of a reply (``NATS/1.0 503``), ``None`` for a message."""
    if headers is not None and headers[8:9] == b" ":
        return headers[9:12].decode()
    return None


# What the read loop hands a direct subscription's message to.
Direct = Callable[[bytes, bytes, bytes, bytes | None], None]


class Pulled:
    """One message a pull request delivered: its ack subject, body and headers."""

    __slots__ = ("data", "headers", "reply")

    def __init__(self, reply: str, data: bytes, headers: dict[str, str] | None):
        self.reply = reply
        self.data = data
        self.headers = headers


class Client(NatsClient):
    """nats-py's client, whose read loop hands the messages of inbox
    subscriptions (:meth:`direct`) to a function of theirs at once; every other
    message takes nats-py's way."""

    def __init__(self) -> None:
        super().__init__()
        self._direct: dict[int, Direct] = {}

    def direct(self, sid: int, handle: Direct | None) -> None:
        """Hand subscription ``sid``'s messages (subject, reply, data, raw
        headers) to ``handle`` in the read loop (``None``: no longer)."""
        if handle is None:
            self._direct.pop(sid, None)
        else:
            self._direct[sid] = handle

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
    ) -> None:
        handle = self._direct.get(sid)
        if handle is None:
            await super()._process_msg(sid, subject, reply, data, headers)
        else:
            handle(subject, reply, data, headers or None)

    def write_now(self) -> None:
        """Write what is pending to the socket now, as nats-py's flusher task
        would one event-loop turn later (it then finds nothing to write). For a
        lone request that something waits for: a send, a pull, a batch's last
        ack; not for many at once (one write for each)."""
        if (
            self._pending_data_size
            and self._transport is not None
            and self.is_connected
        ):
            self._transport.writelines(self._pending[:])
            self._pending = []
            self._pending_data_size = 0


class Pull:
    """One pull request's state while its inbox reads it."""

    def __init__(
        self,
        stream: str,
        consumer: str,
        batch: int,
        each: Callable[[Pulled], None] | None,
    ) -> None:
        self.prefix = f"$JS.ACK.{stream}.{consumer}."
        self.batch = batch
        self.each = each
        self.out: list[Pulled] = []
        self.got = 0
        self.over = False  # the server ended it
        self.error: BaseException | None = None
        self.done = asyncio.Event()

    def end(self, error: BaseException | None = None) -> None:
        """The server ended the request (with ``error``: refused it)."""
        self.over, self.error = True, error
        self.done.set()


class Inbox:
    """A subscription pull requests' replies come to, one request at a time."""

    def __init__(self, nc: Any) -> None:
        self.nc = nc
        self.subject: str = nc.new_inbox()
        self.sub: Any = None
        self.pull: Pull | None = None
        self._naks: set[asyncio.Task[None]] = set()

    async def open(self) -> Inbox:
        """Subscribe."""
        if isinstance(self.nc, Client):
            self.sub = await self.nc.subscribe(self.subject)
            self.nc.direct(self.sub._id, self._on_raw)
        else:  # another client (tests): nats-py's callback
            self.sub = await self.nc.subscribe(self.subject, cb=self._on_msg)
        return self

    async def close(self) -> None:
        """Unsubscribe (a failure means the connection is gone already)."""
        if isinstance(self.nc, Client):
            self.nc.direct(self.sub._id, None)
        with contextlib.suppress(Exception):
            await self.sub.unsubscribe()

    async def _on_msg(self, msg: Any) -> None:
        raw = msg.headers
        status = (raw or {}).get("Status")
        self._take(msg.reply, msg.data, raw, status)

    def _on_raw(
        self, subject: bytes, reply: bytes, data: bytes, headers: bytes | None
    ) -> None:
        status = status_of(headers)  # NATS/1.0 404 No Messages
        parsed = None
        if headers is not None and status is None:
            parsed = parse_headers(headers.decode("utf-8", "replace"))
        self._take(reply.decode(), data, parsed, status)

    def _take(
        self,
        reply: str,
        data: bytes,
        headers: dict[str, str] | None,
        status: str | None,
    ) -> None:
        pull = self.pull
        if status is None and reply:
            if pull is None or pull.over or not reply.startswith(pull.prefix):
                self._nak(reply)
                return
            pull.got += 1
            msg = Pulled(reply, data, headers)
            if pull.each is None:
                pull.out.append(msg)
            else:
                pull.each(msg)
            if pull.got >= pull.batch:
                pull.end()
            return
        if pull is None or status == "100":  # a heartbeat: the request goes on
            return
        pull.end(nats.errors.NoRespondersError() if status == "503" else None)

    def _nak(self, reply: str) -> None:
        """Hand back a message that no request of this inbox waits for."""

        async def nak() -> None:
            with contextlib.suppress(Exception):
                await self.nc.publish(reply, b"-NAK")

        task = asyncio.ensure_future(nak())
        self._naks.add(task)
        task.add_done_callback(self._naks.discard)
