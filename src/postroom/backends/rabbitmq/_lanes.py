"""Claim lanes: the AMQP channel on which one process takes one queue's messages.

A lane takes messages two ways: ``basic.get`` (one round trip, one message) and,
while somebody waits for messages, a consumer (``basic.consume``) to which the
broker pushes them up to a prefetch window; pushed messages wait in the lane's
buffer for the next claim. Every message taken stays unacknowledged on the
channel until it is acked (``ack``), so it is invisible to every other consumer,
and the broker gives it back, counted in ``x-delivery-count``, if the channel
closes. Acks that cover every unacknowledged delivery tag up to the highest of
them go out at once as one ``basic.ack`` with ``multiple``; the others wait up
to twice ACK_DELAY_S for the tags below them to be acked too (a quorum queue
writes one log entry per ``basic.ack``), then go out one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiormq.abc
import aiormq.exceptions
from pamqp import commands as spec

from ...model.message import now_ms

_SEND_ERRORS = (aiormq.exceptions.AMQPError, ConnectionError, RuntimeError)
_background: set[asyncio.Task[None]] = set()

__all__ = ["ACK_DELAY_S", "Lane", "Taken"]

# How long an ack above a tag still held may wait to go out in one multiple ack
# with the acks of the tags below it (docs/backends/rabbitmq.md).
ACK_DELAY_S = 0.02
# A consumer's window is this many times the messages its claims ask for: the
# pushed messages nobody claimed yet are not leases (they are given back when
# the lane goes idle), so the claims never exceed the caller's free slots.
PUSH_AHEAD = 2


@dataclass(slots=True)
class Taken:
    """A message the broker handed to this process on ``lane``, unacknowledged."""

    lane: Lane
    tag: int
    message_id: str
    headers: dict[str, Any]
    body: bytes
    at: int  # when it arrived (ms)

    async def ack(self) -> None:
        """Acknowledge it (take it off its queue)."""
        await self.lane.ack([self.tag])


class Lane:
    """One AMQP channel taking messages from the AMQP queue ``name``."""

    def __init__(
        self,
        channel: aiormq.abc.AbstractChannel,
        name: str,
        on_change: Callable[[Lane], None],
    ) -> None:
        self.channel = channel
        self.name = name
        self.buffer: deque[Taken] = deque()
        self.arrived = asyncio.Event()
        self.prefetch = 0
        self.demand = 1  # messages the last claim asked for: the window to push
        self.used_at = now_ms()  # the last claim or wait
        self.waiters = 0
        self.arrivals = 0  # messages the broker pushed so far
        self._tag: str | None = None  # the consumer's, while it consumes
        self._unacked: set[int] = set()  # neither acked nor waiting to be
        self._deferred: set[int] = set()  # acked, waiting for the tags below
        self._aged: set[int] = set()  # deferred at the last tick
        self._flushing: asyncio.TimerHandle | None = None
        self._sending = asyncio.Lock()  # one ack batch at a time: see _send
        self._on_change = on_change
        channel.closing.add_done_callback(self._closed)
        channel.on_consumer_cancel_callbacks.add(self._cancelled)

    @property
    def closed(self) -> bool:
        """Whether the channel closed (its messages went back to the queue)."""
        return self.channel.is_closed

    @property
    def consuming(self) -> bool:
        """Whether the broker pushes messages to this lane."""
        return self._tag is not None and not self.closed

    def _closed(self, _: object) -> None:
        self._tag = None
        self.buffer.clear()
        self._unacked.clear()
        self._deferred.clear()
        self.arrived.set()  # waiters look again
        self._on_change(self)

    def _cancelled(self, frame: spec.Basic.Cancel) -> None:
        if frame.consumer_tag == self._tag:  # the queue was deleted
            self._tag = None
            self.arrived.set()

    def _taken(self, message: aiormq.abc.DeliveredMessage) -> Taken:
        props = message.header.properties
        tag = int(getattr(message.delivery, "delivery_tag", 0) or 0)
        self._unacked.add(tag)
        return Taken(
            self,
            tag,
            str(props.message_id or ""),
            dict(props.headers or {}),
            message.body,
            now_ms(),
        )

    async def _deliver(self, message: aiormq.abc.DeliveredMessage) -> None:
        self.buffer.append(self._taken(message))
        self.arrivals += 1
        self.arrived.set()
        self._on_change(self)

    async def get(self) -> Taken | None:
        """One message by ``basic.get``, or ``None`` when the queue has none."""
        message = await self.channel.basic_get(self.name, no_ack=False)
        if isinstance(message.delivery, spec.Basic.GetEmpty):
            return None
        return self._taken(message)

    def take(self, n: int) -> list[Taken]:
        """Up to ``n`` pushed messages, oldest first."""
        out = [self.buffer.popleft() for _ in range(min(n, len(self.buffer)))]
        if not self.buffer:
            self.arrived.clear()
        if out:
            self._on_change(self)
        return out

    def put_back(self, taken: list[Taken]) -> None:
        """Return messages taken from this lane and not handed out to the front
        of its buffer (still unacknowledged: the next claim takes them first)."""
        if taken:
            self.buffer.extendleft(reversed(taken))
            self.arrived.set()
            self._on_change(self)

    async def consume(self, prefetch: int) -> None:
        """Have the broker push up to PUSH_AHEAD times ``prefetch``
        unacknowledged messages (a running consumer with a smaller window is
        replaced): the next claim finds its messages here."""
        old = self._tag
        if old is not None and prefetch <= self.prefetch:
            return
        await self.channel.basic_qos(prefetch_count=prefetch * PUSH_AHEAD)
        ok = await self.channel.basic_consume(self.name, self._deliver)
        self._tag, self.prefetch = ok.consumer_tag, prefetch
        if old is not None:
            await self.channel.basic_cancel(old)

    async def barrier(self) -> None:
        """Returns once every message the broker pushed before it is buffered
        (a round trip on the channel: deliveries come first)."""
        if self.consuming:
            await self.channel.basic_qos(prefetch_count=self.prefetch * PUSH_AHEAD)

    async def stop(self) -> list[Taken]:
        """Stop the consumer; return the pushed messages nobody took (still
        unacknowledged: the caller gives them back)."""
        tag, self._tag = self._tag, None
        if tag is not None and not self.closed:
            await self.channel.basic_cancel(tag)  # pushes before it are buffered
        return self.take(len(self.buffer))

    async def ack(self, tags: Iterable[int]) -> None:
        """Acknowledge ``tags``: one ``multiple`` ack at once for those below
        every unacknowledged tag (with the waiting acks below it); the others
        wait to join a later one, at most twice ACK_DELAY_S, then go out one by
        one."""
        mine = {t for t in tags if t in self._unacked}
        if not mine:
            return
        self._unacked -= mine
        self._deferred |= mine
        await self._send(alone=set())
        if self._deferred and self._flushing is None:
            loop = asyncio.get_running_loop()
            self._flushing = loop.call_later(ACK_DELAY_S, self._flush_later)
        if self.closed:
            raise aiormq.exceptions.ChannelInvalidStateError(f"{self.name}: closed")

    def _flush_later(self) -> None:
        self._flushing = None
        if self._deferred and not self.closed:
            task = asyncio.get_running_loop().create_task(self._tick())
            _background.add(task)
            task.add_done_callback(_background.discard)

    async def _tick(self) -> None:
        aged, self._aged = self._aged, set(self._deferred)
        with contextlib.suppress(*_SEND_ERRORS):
            await self._send(alone=aged)
        if self._deferred and self._flushing is None and not self.closed:
            loop = asyncio.get_running_loop()
            self._flushing = loop.call_later(ACK_DELAY_S, self._flush_later)

    async def flush(self) -> None:
        """Send every deferred ack now."""
        if self._flushing is not None:
            self._flushing.cancel()
            self._flushing = None
        if self._deferred and not self.closed:
            with contextlib.suppress(*_SEND_ERRORS):
                await self._send(alone=set(self._deferred))

    async def _send(self, *, alone: set[int]) -> None:
        """One multiple ack for the deferred tags below every unacknowledged
        one, then one ack each for the deferred tags in ``alone``.

        One batch at a time, chosen once the one before is written: the
        connection's write queue holds ten frames, and a sender waiting for room
        there can be overtaken by a later one. A later multiple ack would then
        take a tag this batch acks next, which the broker refuses as an unknown
        delivery tag, closing the channel (and every lease on it)."""
        async with self._sending:
            lowest_kept = min(self._unacked, default=None)
            together = {
                t for t in self._deferred if lowest_kept is None or t < lowest_kept
            }
            frames: list[tuple[int, bool]] = []
            if together:
                frames.append((max(together), len(together) > 1))
            self._deferred -= together
            rest = alone & self._deferred
            frames += [(tag, False) for tag in sorted(rest)]
            self._deferred -= rest
            for i, (tag, multiple) in enumerate(frames):
                # Waiting for the last one to be written lets a connection that
                # broke be noticed (the ack then raises: the lease was lost).
                last = i == len(frames) - 1
                await self.channel.basic_ack(tag, multiple=multiple, wait=last)
