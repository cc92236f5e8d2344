"""Sending, claiming and settling messages on JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from datetime import datetime

import nats.errors

from ...model.message import (
    Delivery,
    QueuePolicy,
    from_ms,
    now_ms,
)
from ._conn import translated
from ._held import Held
from ._inbox import Pulled
from ._leases import (
    GRACE_MS,
    Lease,
    delivered_count,
    make_receipt,
    pending_of,
    stream_seq,
)
from ._names import CONSUMER
from ._records import Meta, message_headers, meta_of
from ._settle import Settling

__all__ = ["Messages"]

log = logging.getLogger(__name__)

_MOVE_BATCH = 256
_CLOSED = (nats.errors.ConnectionClosedError, nats.errors.BadSubscriptionError)
_MOVE_EVERY = 0.05  # seconds between looks at a queue's delayed messages
# How long a claim's pull may wait when the server counts no pending message: its
# count lags the publish's ack a little, and a claim must see what a send that
# returned stored (an empty queue's claim takes this long).
_HOLD = 0.05


class Messages(Settling):
    """The message half of the backend: enqueue, claim, ack, retry, release..."""

    _moved_at: dict[str, float]
    _last_claim: dict[str, tuple[int, str, int]]
    _held: dict[str, Held]

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._moved_at = {}
        # queue -> (lease_ms, consumer, how many more it could have taken)
        self._last_claim = {}
        self._held = {}  # queue -> its held pull request (see wait)

    # -- claiming ------------------------------------------------------------------

    async def move_due(self, queue: str) -> int:
        """Move delayed messages that are due onto the queue; hand the others
        back to the delay consumer with a NAK delayed until they are due. How
        many moved."""
        n = self.names
        msgs = await self.jet.pull(n.delay_stream(queue), CONSUMER, _MOVE_BATCH)
        now = now_ms()
        moved = 0
        for msg in msgs:
            meta = meta_of(msg.headers)
            if meta is not None and meta.available_ms > now:
                delay_ns = (meta.available_ms - now) * 1_000_000
                payload = b"-NAK " + json.dumps({"delay": delay_ns}).encode()
                await self.jet.ack(msg.reply, payload)
                continue
            if meta is not None:
                stream, subject = self.lane(queue, meta)
                await self.jet.publish(
                    subject,
                    msg.data,
                    message_headers(meta, f"{meta.id}.w{stream_seq(msg.reply)}"),
                    stream=stream,
                    queue=queue,
                )
                moved += 1
            await self.jet.ack(msg.reply)
        return moved

    async def claim(
        self, queue: str, max_messages: int, lease_ms: int, consumer: str
    ) -> list[Delivery]:
        policy = await self.policy(queue)
        # Leases of this process that ended a moment ago: NAKed (and processed)
        # before the pull, so that the claim finds those messages visible.
        ended = self.leases.take_ended(self.names.stream(queue))
        if ended:
            await self.mark_ended(ended)
        got = await self._hand_out(queue, policy, max_messages, lease_ms, consumer)
        if got is None:
            msgs, sent = await self._pull(queue, max_messages)
            got = await self._deliver_all(queue, policy, msgs, sent, lease_ms, consumer)
        self._last_claim[queue] = (lease_ms, consumer, max_messages - len(got))
        return got

    async def _pull(self, queue: str, max_messages: int) -> tuple[list[Pulled], int]:
        """Messages of the queue, and when their pull was sent."""
        # Delayed messages are looked at once per interval, not on every claim
        # of a busy worker: a due message waits at most that much longer.
        moved_at = self._moved_at.get(queue, 0.0)
        move = time.monotonic() - moved_at >= _MOVE_EVERY
        if move:
            self._moved_at[queue] = time.monotonic()
        # Leases count from the pull's sending: never after the server's.
        sent = now_ms()
        stream = self.names.stream(queue)
        if not move:
            msgs = await self.jet.pull(stream, CONSUMER, max_messages, hold=_HOLD)
        else:
            # The look at delayed messages goes out with the pull (one round
            # trip); when only it found something, one more pull takes that.
            pulled, moved = await asyncio.gather(
                self.jet.pull(stream, CONSUMER, max_messages, hold=_HOLD),
                self.move_due(queue),
                return_exceptions=True,
            )
            if isinstance(pulled, BaseException):
                raise pulled
            if isinstance(moved, BaseException):
                raise moved
            msgs = pulled
            if not msgs and moved:
                sent = now_ms()
                msgs = await self.jet.pull(stream, CONSUMER, max_messages, hold=_HOLD)
        return msgs, sent

    async def _hand_out(
        self,
        queue: str,
        policy: QueuePolicy,
        max_messages: int,
        lease_ms: int,
        consumer: str,
    ) -> list[Delivery] | None:
        """Hand out what the queue's held pull request brought; ``None`` when it
        is over and brought nothing left (or for another lease or consumer: that
        is given back).

        While the request is open, the server gives it what is stored first: a
        claim that finds nothing yet waits up to :data:`_HOLD` for it, as a
        pull of its own would."""
        held = self._held.get(queue)
        if held is None:
            return None
        if (held.lease_ms, held.consumer) != (lease_ms, consumer):
            items = held.take(len(held.items))
            self._forget(queue, held)
            await self._give_back(queue, policy, held, items)
            return None
        if not held.items and held.active:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_HOLD):
                    await held.arrived.wait()
        items = held.take(max_messages)
        self._forget(queue, held)
        if not items:
            return [] if held.active else None
        got = await self._deliver_items(queue, policy, items, lease_ms, consumer)
        # The server said more were waiting (and the request cannot take them):
        # take them in this claim too, so that a burst goes in batches again.
        more = max_messages - len(items)
        if more > 0 and not held.active and pending_of(items[-1][0].reply) > 0:
            sent = now_ms()
            extra = await self.jet.pull(
                self.names.stream(queue), CONSUMER, more, hold=_HOLD
            )
            got += await self._deliver_all(
                queue, policy, extra, sent, lease_ms, consumer
            )
        return got

    def _forget(self, queue: str, held: Held) -> None:
        """Drop a held request that is over and has nothing left."""
        if not held.active and not held.items and self._held.get(queue) is held:
            del self._held[queue]

    async def _deliver_all(
        self,
        queue: str,
        policy: QueuePolicy,
        msgs: list[Pulled],
        sent: int,
        lease_ms: int,
        consumer: str,
    ) -> list[Delivery]:
        items = [(m, sent) for m in msgs]
        return await self._deliver_items(queue, policy, items, lease_ms, consumer)

    async def _deliver_items(
        self,
        queue: str,
        policy: QueuePolicy,
        items: list[tuple[Pulled, int]],
        lease_ms: int,
        consumer: str,
    ) -> list[Delivery]:
        """Deliveries of pulled messages, each with its pull's sending time.

        Their leases are all held (one lock) before anything is awaited; the
        times a batch shares (a pull's lease end, a burst's send time) are
        made into datetimes once."""
        counts = [delivered_count(m.reply) for m, _ in items]
        redelivered = [
            m.reply for (m, _), n in zip(items, counts, strict=True) if n > 1
        ]
        if redelivered:
            await self.unmark(redelivered)
        out: list[Delivery] = []
        leases: list[Lease] = []
        refused: list[tuple[Pulled, Meta | None, int]] = []
        ack_wait = policy.lease_ms + GRACE_MS
        times: dict[int, datetime] = {}
        for (msg, sent), delivered in zip(items, counts, strict=True):
            meta = meta_of(msg.headers)
            if meta is None or (
                delivered > 1 and meta.base + delivered - 1 >= policy.max_attempts
            ):
                refused.append((msg, meta, delivered))
                continue
            end = sent + lease_ms
            reply = msg.reply
            leases.append(Lease(reply, meta.id, end, sent + ack_wait, ack_wait, meta))
            at = times.get(end)
            if at is None:
                at = times[end] = from_ms(end)
            out.append(
                Delivery(
                    meta.message(queue, msg.data, meta.base + delivered, times),
                    make_receipt(end, reply),
                    at,
                    consumer,
                )
            )
        self.leases.add_all(leases)
        for msg, meta, delivered in refused:
            await self._refuse(queue, msg, meta, delivered)
        return out

    async def _refuse(
        self, queue: str, msg: Pulled, meta: Meta | None, delivered: int
    ) -> None:
        """Remove a delivery that is not handed out: one that is not postroom's,
        or whose last lease expired with its attempts used up (a dead letter)."""
        if meta is None:
            log.warning("dropping a message without postroom meta on %r", queue)
            await self.jet.ack(msg.reply, b"+TERM")
            return
        attempts = meta.base + delivered
        dead = meta.with_expiries(delivered - 1, now_ms())
        await self.bury(queue, dead, msg.data, msg.reply, "lease_expired", attempts - 1)

    async def _give_back(
        self,
        queue: str,
        policy: QueuePolicy,
        held: Held,
        items: list[tuple[Pulled, int]],
    ) -> None:
        """Release messages a held request brought that no claim took, without
        counting the attempt."""
        got = await self._deliver_items(
            queue, policy, items, held.lease_ms, held.consumer
        )
        await self.release(got)

    async def give_back_all(self) -> None:
        """Release every message held requests brought (the backend closes)."""
        tasks = [h.task for h in self._held.values() if h.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        while self._held:
            queue, held = self._held.popitem()
            with contextlib.suppress(Exception):
                policy = await self.policy(queue)
                await self._give_back(queue, policy, held, held.take(len(held.items)))

    async def wait(self, queue: str, timeout: float) -> None:
        """Until a message may be visible on the queue, or at most 0.1 s.

        After a claim, the wait is a pull request the server holds (``expires``)
        until it has messages, for as many as that claim could have taken more;
        it is read on (a task) until it ends, each message kept for the next
        claims of the queue with the same lease and consumer (any other gives
        them back without counting an attempt): a woken consumer has its
        messages without another round trip. Lease expiries and due delayed
        messages are found by the next claim."""
        wait = max(0.0, min(timeout, 0.1))
        held = self._held.get(queue)
        if held is not None and held.items:
            return
        last = self._last_claim.get(queue)
        if last is None or wait < 0.01:
            await self._woken(queue, wait)
            return
        lease_ms, consumer, want = last
        if held is None or not held.active:
            held = self._held[queue] = Held(lease_ms, consumer, now_ms())
            held.task = asyncio.ensure_future(
                self._read_held(queue, held, max(1, want), wait)
            )
        # Cancelled (a worker stopping), the request is still read to its end by
        # the task, and what it brings is given back by the next claim or aclose.
        await held.arrived.wait()

    async def _read_held(self, queue: str, held: Held, batch: int, wait: float) -> None:
        try:
            await self.jet.pull(
                self.names.stream(queue), CONSUMER, batch, hold=wait, each=held.add
            )
        except Exception as exc:  # the next claim pulls, and raises, by itself
            log.debug("a held pull request on %r failed: %s", queue, exc)
        finally:
            held.arrived.set()

    async def _woken(self, queue: str, wait: float, subject: str | None = None) -> None:
        """Until a message is published to the queue (to ``subject``: the
        queue's ready subject by default), or ``wait`` seconds."""
        event = asyncio.Event()

        async def woken(msg: object) -> None:
            event.set()

        async with translated(self.jet.where):
            subject = subject or self.names.subject(queue, "*")
            sub = await self.jet.nc.subscribe(subject, cb=woken)
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await event.wait()
            finally:
                with contextlib.suppress(*_CLOSED):
                    await sub.unsubscribe()
