"""Claim lanes: the AMQP channel on which one process takes one queue's messages.

A lane takes messages two ways: ``basic.get`` (one round trip, one message) and,
while somebody waits for messages, a consumer (``basic.consume``) to which the
broker pushes them up to a prefetch window; pushed messages wait in the lane's
buffer for the next claim. Every message taken stays unacknowledged on the
channel until it is acked (``ack``), so it is invisible to every other consumer,
and the broker gives it back, counted in ``x-delivery-count``, if the channel
closes. Acks that cover every unacknowledged delivery tag up to the highest of
them go out as one ``basic.ack`` with ``multiple``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiormq.abc
import aiormq.exceptions
from pamqp import commands as spec

from ...model.message import now_ms

__all__ = ["Lane", "Taken"]


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
        self._unacked: set[int] = set()
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
        """Have the broker push up to ``prefetch`` unacknowledged messages (a
        running consumer with a smaller window is replaced)."""
        old = self._tag
        if old is not None and prefetch <= self.prefetch:
            return
        await self.channel.basic_qos(prefetch_count=prefetch)
        ok = await self.channel.basic_consume(self.name, self._deliver)
        self._tag, self.prefetch = ok.consumer_tag, prefetch
        if old is not None:
            await self.channel.basic_cancel(old)

    async def barrier(self) -> None:
        """Returns once every message the broker pushed before it is buffered
        (a round trip on the channel: deliveries come first)."""
        if self.consuming:
            await self.channel.basic_qos(prefetch_count=self.prefetch)

    async def stop(self) -> list[Taken]:
        """Stop the consumer; return the pushed messages nobody took (still
        unacknowledged: the caller gives them back)."""
        tag, self._tag = self._tag, None
        if tag is not None and not self.closed:
            await self.channel.basic_cancel(tag)  # pushes before it are buffered
        return self.take(len(self.buffer))

    async def ack(self, tags: Iterable[int]) -> None:
        """Acknowledge ``tags``: one ``multiple`` ack for those below every
        other unacknowledged tag, one ack each for the rest."""
        mine = {t for t in tags if t in self._unacked}
        if not mine:
            return
        self._unacked -= mine
        lowest_kept = min(self._unacked, default=None)
        together = [t for t in mine if lowest_kept is None or t < lowest_kept]
        alone = sorted(mine.difference(together))
        frames = [(tag, False) for tag in alone]
        if len(together) > 1:
            frames.append((max(together), True))
        else:
            frames += [(tag, False) for tag in together]
        for i, (tag, multiple) in enumerate(frames):
            # Waiting for the last one to be written lets a connection that
            # broke be noticed (the ack then raises: the lease was lost).
            last = i == len(frames) - 1
            await self.channel.basic_ack(tag, multiple=multiple, wait=last)
        if self.closed:
            raise aiormq.exceptions.ChannelInvalidStateError(f"{self.name}: closed")
