"""Inboxes that pull requests' replies come to, kept from one request to the next.

A pull request's messages and its closing status (404, 408, 409) come to the
inbox named as its reply subject. An :class:`Inbox` is one subscription whose
callback hands each message to the request it serves (:class:`Pull`), in the
connection's read order, with no task per message. Once the server has ended a
request (its status came, or the batch is full), the inbox serves the next one:
no SUB and UNSUB per request. One whose request was given up on (the server
never ended it) is unsubscribed. A message that comes when the inbox serves no
request, or another consumer's, is handed back at once (``-NAK``) instead of
waiting for its AckWait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import nats.errors
from nats.aio.msg import Msg

__all__ = ["Inbox", "Pull"]


class Pull:
    """One pull request's state while its inbox reads it."""

    def __init__(
        self, stream: str, consumer: str, batch: int, each: Callable[[Msg], None] | None
    ) -> None:
        self.prefix = f"$JS.ACK.{stream}.{consumer}."
        self.batch = batch
        self.each = each
        self.out: list[Msg] = []
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

    async def open(self) -> Inbox:
        """Subscribe."""
        self.sub = await self.nc.subscribe(self.subject, cb=self._on_msg)
        return self

    async def close(self) -> None:
        """Unsubscribe (a failure means the connection is gone already)."""
        with contextlib.suppress(Exception):
            await self.sub.unsubscribe()

    async def _on_msg(self, msg: Msg) -> None:
        pull = self.pull
        status = (msg.headers or {}).get("Status")
        if status is None and msg.reply:
            if pull is None or pull.over or not msg.reply.startswith(pull.prefix):
                with contextlib.suppress(Exception):
                    await self.nc.publish(msg.reply, b"-NAK")
                return
            pull.got += 1
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
