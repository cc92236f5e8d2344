"""Leases of arbitrary length over JetStream's one AckWait per consumer.

A queue's consumer has ``AckWait`` = the queue's visibility timeout, so a lease of
that length is the server's own: it redelivers the message when the time is up,
whether the holder lives or not. A lease of another length (``receive(...,
visibility_timeout=...)``, ``extend``) is kept by the process that holds it:

- longer than AckWait: an in-progress ack (``+WPI``, which restarts AckWait) every
  half AckWait until the lease ends; a crashed holder stops sending them, so the
  message comes back at most one AckWait after the crash;
- shorter: a ``-NAK`` when it ends, which JetStream counts as a delivery like an
  expiry (a crashed holder's message comes back after the full AckWait).

A receipt carries its lease's end (``<end ms>:<ack subject>``). JetStream takes an
ack on an old delivery's subject as an ack of the current one, so no ack, retry
or extend is sent once a lease has ended: the local end is computed from the time
the pull was *sent*, never later than the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ...model.errors import ConfigurationError, LeaseLost
from ...model.message import now_ms

__all__ = ["Lease", "LeaseKeeper", "make_receipt", "parse_receipt"]

log = logging.getLogger(__name__)

_MARGIN_MS = 50  # a NAK or +WPI closer than this to the server's expiry is not sent
_GONE = 10_000  # how many ended receipts are remembered, to answer LeaseLost


def make_receipt(end_ms: int, reply: str) -> str:
    """The opaque receipt of one lease."""
    return f"{end_ms}:{reply}"


def parse_receipt(receipt: str) -> tuple[int, str]:
    """Split a receipt into the lease's end and the delivery's ack subject."""
    end, _, reply = receipt.partition(":")
    if not end.isdigit() or not reply.startswith("$JS.ACK."):
        raise ConfigurationError(f"malformed NATS receipt {receipt!r}")
    return int(end), reply


def delivered_count(reply: str) -> int:
    """How often JetStream delivered the message, read from its ack subject."""
    tokens = reply.split(".")
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>, with
    # <domain>.<account hash> before <stream> on servers >= 2.10.
    return int(tokens[-5])


def stream_of(reply: str) -> str:
    """The stream of the delivered message."""
    return reply.split(".")[-7]


def stream_seq(reply: str) -> int:
    """The stream sequence of the delivered message."""
    return int(reply.split(".")[-4])


@dataclass(slots=True)
class Lease:
    """One held delivery: when it ends and when the server would expire it."""

    reply: str
    message_id: str
    end_ms: int
    server_end_ms: int
    ack_wait_ms: int
    extra: Any = None  # what the backend keeps with it (the copy's meta)


class LeaseKeeper:
    """The leases this process holds, kept alive or ended on time by one task."""

    def __init__(self, send: Any) -> None:
        self._send = send  # async (reply, payload) -> None
        self._held: dict[str, Lease] = {}
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the task that sends in-progress acks and NAKs (nats-py runs on
        asyncio, so this is an asyncio task living as long as the connection)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the task (leases then end on the server's AckWait)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def add(self, lease: Lease) -> None:
        """Hold a new lease."""
        self._held[lease.reply] = lease
        self._changed.set()

    def get(self, reply: str) -> Lease | None:
        """The lease held on ``reply``, if this process holds it."""
        return self._held.get(reply)

    def check(self, receipt: str) -> tuple[str, Lease | None]:
        """The ack subject of a live lease (and the lease when held here);
        :class:`LeaseLost` when it ended or was acted on already."""
        end, reply = parse_receipt(receipt)
        lease = self._held.get(reply)
        if lease is not None:
            end = lease.end_ms
        if reply in self._gone or now_ms() >= end:
            raise LeaseLost(reply)
        return reply, lease

    def drop_stream(self, stream: str) -> None:
        """Forget every lease on ``stream`` (its queue was deleted)."""
        for reply in [r for r in self._held if stream_of(r) == stream]:
            self.finish(reply)

    def finish(self, reply: str) -> None:
        """The lease ended by an ack, retry, dead letter or release."""
        self._held.pop(reply, None)
        self._gone[reply] = None
        while len(self._gone) > _GONE:
            self._gone.popitem(last=False)

    async def extend(
        self,
        reply: str,
        lease: Lease | None,
        end_ms: int,
        ack_wait_ms: int,
        message_id: str,
    ) -> Lease:
        """Make the lease end at ``end_ms``; an in-progress ack when it must."""
        now = now_ms()
        if lease is None:  # held by another process's pull: adopt it
            lease = Lease(reply, message_id, end_ms, now, ack_wait_ms)
            self._held[reply] = lease
        if end_ms > lease.server_end_ms:
            await self._send(reply, b"+WPI")
            lease.server_end_ms = now + lease.ack_wait_ms
        lease.end_ms = end_ms
        self._changed.set()
        return lease

    def _next_event(self, now: int) -> int:
        wake = now + 1000
        for lease in self._held.values():
            wake = min(wake, lease.end_ms)
            if lease.end_ms > lease.server_end_ms:
                wake = min(wake, lease.server_end_ms - lease.ack_wait_ms // 2)
        return wake

    async def _run(self) -> None:
        while True:
            now = now_ms()
            wake = self._next_event(now)
            if wake > now:
                self._changed.clear()
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a
                # cancellation that arrives as the event is set.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout((wake - now) / 1000):
                        await self._changed.wait()
                continue
            for lease in list(self._held.values()):
                with contextlib.suppress(Exception):
                    await self._tend(lease, now)

    async def _tend(self, lease: Lease, now: int) -> None:
        if now >= lease.end_ms:
            self.finish(lease.reply)
            if lease.end_ms < lease.server_end_ms - _MARGIN_MS:
                await self._send(lease.reply, b"-NAK")
            return
        half = lease.server_end_ms - lease.ack_wait_ms // 2
        if now >= half and lease.end_ms > lease.server_end_ms:
            lease.server_end_ms = now + lease.ack_wait_ms
            await self._send(lease.reply, b"+WPI")
