"""Leases of any length over JetStream's one AckWait per consumer.

A queue's consumer has ``AckWait`` = the queue's visibility timeout plus
:data:`GRACE_MS`. The process that holds a lease keeps it, from a thread of its
own (the caller's event loop may be idle between calls):

- at the lease's end, a ``-NAK``: JetStream delivers the message again at once and
  counts a delivery, as for an expiry (marked first, see ``Names.ended_stream``);
- a lease longer than that (``receive(..., visibility_timeout=...)``, ``extend``):
  an in-progress ack (``+WPI``, which restarts AckWait) every half AckWait, so the
  server's expiry stays at least the grace after the lease's end.

A holder that died sends nothing: the server delivers the message again when
AckWait runs out, the grace after the lease it had (or after its last in-progress
ack). A receipt carries its lease's end (``<end ms>:<ack subject>``), computed from
the time the pull was *sent*, never later than the server's. JetStream takes an ack
on an old delivery's subject as an ack of the current one, so nothing is sent once
a lease has ended; and thanks to the grace, an ack sent just before the end still
reaches the server before it expires the delivery, unless the server lags by more
than the grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import nats

from ...model.errors import ConfigurationError, LeaseLost
from ...model.message import now_ms

__all__ = ["Lease", "LeaseKeeper", "make_receipt", "parse_receipt"]

log = logging.getLogger(__name__)

# The consumer's AckWait is the visibility timeout plus this grace, and a lease is
# kept at least this long before the server's expiry: an ack sent just before the
# lease's end but processed by the server later acks *this* delivery, not the next
# one (JetStream would take it for the next one's), unless the server lags by more.
GRACE_MS = 1000
_SLACK_MS = 50  # a NAK closer than this to the server's expiry is not sent
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
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>, with
    # <domain>.<account hash> before <stream> on servers >= 2.10.
    return int(reply.rsplit(".", 5)[1])


def pending_of(reply: str) -> int:
    """How many more messages the consumer had waiting when it delivered this one."""
    return int(reply.split(".")[-1])


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
    """The leases this process holds, ended (NAK) or kept alive (in-progress
    acks) on time by a thread of their own.

    The thread has its own event loop and NATS connection, so that leases are
    tended while the caller's loop is idle (the sync client runs its loop only
    during a call). It starts with the first lease.
    """

    def __init__(self, servers: list[str], mark_of: Callable[[str], str]) -> None:
        self._servers = servers
        self._mark_of = mark_of  # the ended-lease mark of a delivery
        self._lock = threading.Lock()
        self._held: dict[str, Lease] = {}
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._wake_at = 0  # when the thread looks at the leases next (ms)

    # -- the caller's side ---------------------------------------------------------

    def add(self, lease: Lease) -> None:
        """Hold a new lease."""
        with self._lock:
            self._held[lease.reply] = lease
            if len(self._held) % 1024 == 0:
                self._forget_ended(now_ms())
            # The thread looks again by itself before this lease needs anything.
            later = self._thread is not None and _first_need(lease) >= self._wake_at
        if not later:
            self._poke()

    def add_all(self, leases: list[Lease]) -> None:
        """Hold new leases (one lock for all)."""
        if not leases:
            return
        with self._lock:
            later = self._thread is not None
            for lease in leases:
                self._held[lease.reply] = lease
                if len(self._held) % 1024 == 0:
                    self._forget_ended(now_ms())
                # The thread looks again by itself before this lease needs anything.
                later = later and _first_need(lease) >= self._wake_at
        if not later:
            self._poke()

    def check(self, receipt: str) -> tuple[str, Lease | None]:
        """The ack subject of a live lease (and the lease when held here);
        :class:`LeaseLost` when it ended or was acted on already."""
        end, reply = parse_receipt(receipt)
        with self._lock:
            lease = self._held.get(reply)
            if lease is not None:
                end = lease.end_ms
            if reply in self._gone or now_ms() >= end:
                raise LeaseLost(reply)
        return reply, lease

    def take_ended(self, stream: str) -> list[str]:
        """Leases on ``stream`` that have ended but whose NAK the thread has not
        sent yet: finished here, for the caller to NAK before it claims."""
        now = now_ms()
        with self._lock:
            ended = [
                x.reply
                for x in self._held.values()
                if now >= x.end_ms
                and now < x.server_end_ms - _SLACK_MS
                and stream_of(x.reply) == stream
            ]
            for reply in ended:
                self._finish(reply)
        return ended

    def drop_stream(self, stream: str) -> None:
        """Forget every lease on ``stream`` (its queue was deleted)."""
        with self._lock:
            for reply in [r for r in self._held if stream_of(r) == stream]:
                self._finish(reply)

    def finish(self, reply: str) -> None:
        """The lease ended by an ack, retry, dead letter or release."""
        with self._lock:
            self._finish(reply)

    def finish_all(self, replies: list[str]) -> None:
        """Leases ended by a batch of acks (one lock for all)."""
        with self._lock:
            for reply in replies:
                self._finish(reply)

    def _finish(self, reply: str) -> None:
        self._held.pop(reply, None)
        self._gone[reply] = None
        while len(self._gone) > _GONE:
            self._gone.popitem(last=False)

    def _forget_ended(self, now: int) -> None:
        for reply in [r for r, x in self._held.items() if x.end_ms < now - 60_000]:
            self._finish(reply)

    async def extend(
        self,
        reply: str,
        lease: Lease | None,
        end_ms: int,
        send: Callable[[str, bytes], Awaitable[None]],
        ack_wait_ms: int,
        message_id: str,
    ) -> Lease:
        """Make the lease end at ``end_ms``; an in-progress ack (through
        ``send``, the caller's connection) when the server would end it first."""
        now = now_ms()
        if lease is None:  # received by another process's client: adopt it
            lease = Lease(reply, message_id, end_ms, now, ack_wait_ms)
            with self._lock:
                self._held[reply] = lease
        if end_ms + GRACE_MS > lease.server_end_ms:
            await send(reply, b"+WPI")
            lease.server_end_ms = now + lease.ack_wait_ms
        lease.end_ms = end_ms
        self._poke()
        return lease

    def _poke(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=lambda: asyncio.run(self._serve()),
                name="postroom-nats-leases",
                daemon=True,
            )
            self._thread.start()
            self._ready.wait(timeout=5)
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop just closed
                loop.call_soon_threadsafe(wake.set)

    async def stop(self) -> None:
        """Stop the thread (held leases then end on the server's AckWait)."""
        thread = self._thread
        if thread is not None:
            self._stopping = True
            self._poke()
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 10)
            self._thread, self._stopping = None, False
            self._ready.clear()

    # -- the thread's side ---------------------------------------------------------

    async def _serve(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        nc = None
        try:
            nc = await nats.connect(
                servers=self._servers,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.25,
                connect_timeout=2,
            )
            await self._tend(nc)
        except Exception as exc:  # nothing to tell it to: the server's AckWait rules
            log.warning("NATS lease keeper stopped: %s", exc)
        finally:
            self._loop = None
            if nc is not None:
                with contextlib.suppress(Exception):
                    await nc.close()

    async def _tend(self, nc: Any) -> None:
        assert self._wake is not None
        while not self._stopping:
            now = now_ms()
            with self._lock:
                sends, wake = self._due(now)
                self._wake_at = wake
            # An ended lease is marked (its message counts as ready) before its NAK.
            await asyncio.gather(
                *(
                    nc.request(self._mark_of(reply), b"", timeout=2)
                    for reply, payload in sends
                    if payload == b"-NAK"
                ),
                return_exceptions=True,
            )
            for reply, payload in sends:
                with contextlib.suppress(Exception):
                    await nc.publish(reply, payload)
            if sends:
                with contextlib.suppress(Exception):
                    await nc.flush(timeout=2)
            if wake > now and not self._stopping:
                self._wake.clear()
                # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a
                # cancellation that arrives as the event is set.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout((wake - now) / 1000):
                        await self._wake.wait()

    def _due(self, now: int) -> tuple[list[tuple[str, bytes]], int]:
        """What to send now (NAKs of ended leases, in-progress acks of long ones)
        and when to look again."""
        sends: list[tuple[str, bytes]] = []
        wake = now + 1000
        for lease in list(self._held.values()):
            if now >= lease.end_ms:
                self._finish(lease.reply)
                if now < lease.server_end_ms - _SLACK_MS:
                    sends.append((lease.reply, b"-NAK"))
                continue
            half = lease.server_end_ms - lease.ack_wait_ms // 2
            if lease.end_ms + GRACE_MS > lease.server_end_ms and now >= half:
                lease.server_end_ms = now + lease.ack_wait_ms
                sends.append((lease.reply, b"+WPI"))
            wake = min(wake, _first_need(lease))
        return sends, wake


def _first_need(lease: Lease) -> int:
    """When the lease next needs something: its end (a NAK), or before that an
    in-progress ack half an AckWait before the server's expiry."""
    if lease.end_ms + GRACE_MS > lease.server_end_ms:
        return min(lease.end_ms, lease.server_end_ms - lease.ack_wait_ms // 2)
    return lease.end_ms
