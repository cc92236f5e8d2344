"""``amqp://``, ``amqps://``: the RabbitMQ (>= 3.10) backend.

Messages live in quorum queues (publisher confirms, durable), delayed ones in
per-delay TTL quorum queues that dead-letter back (at least once) when due. A
lease is an unacknowledged AMQP delivery held by the process that claimed it:
the process ends it at the visibility timeout itself, and the broker ends it
when the process dies or hangs (connection closed or heartbeats missed), then
counts the redelivery (``x-delivery-count``). Everything AMQP cannot hold
(policies, dead letters, counters, lease gauges, dedup keys) is a record in one
of three streams that every process follows (``_state``). See
``docs/backends/rabbitmq.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import replace

from aio_pika.abc import (
    AbstractIncomingMessage,
)

from ...model.errors import LeaseLost
from ...model.message import (
    Delivery,
    HistoryEntry,
    Message,
    QueuePolicy,
    from_ms,
    now_ms,
)
from .._common import make_receipt, new_token
from ._admin import AdminMixin
from ._core import GETTERS, _Lease
from ._records import Unpacked
from ._translate import translated

__all__ = ["RabbitBackend"]

# A waiting consumer looks at the queue's depth after 5 ms, then twice as long
# after each look that found nothing, up to every 50 ms: a busy queue is seen
# within milliseconds, an idle one costs 20 looks a second.
_WAIT_FIRST_S = 0.005
_WAIT_MAX_S = 0.05
_CONFIRMED_KEPT = 100_000  # ids of confirmed sends kept to skip a retried send


class RabbitBackend(AdminMixin):
    """RabbitMQ backend: quorum queues, TTL delay queues, streams for the rest."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._confirmed: dict[str, None] = {}
        self._next_getter = 0

    @translated
    async def declare_queue(
        self, queue: str, policy: QueuePolicy, *, replace: bool = True
    ) -> QueuePolicy:
        stored = self.state.policies.get(queue)
        await self._ready(queue)
        if stored is not None and (not replace or stored == policy):
            return stored
        rec = {"t": "policy", "q": queue, "p": policy.to_dict(), "replace": replace}
        await self.streams.append(self.names.meta, rec, applied=True)
        return self.state.policies[queue]

    @translated
    async def list_queues(self) -> list[str]:
        await self.streams.sync()
        return sorted(self.state.policies)

    # -- messages ------------------------------------------------------------------

    @translated
    async def enqueue(
        self, queue: str, messages: Sequence[Message], *, dedup_window_ms: int
    ) -> list[str]:
        await self._policy(queue)
        await self._revive()
        ids: list[str] = []
        fresh: list[Message] = []
        for m in messages:
            first = m.id
            if m.dedup_key is not None:
                first = await self._dedup(queue, m, dedup_window_ms)
            ids.append(first)
            if first == m.id and m.id not in self._confirmed:
                fresh.append(m)
        await asyncio.gather(*(self._send_once(m) for m in fresh))
        if fresh:
            self._count(queue, sent=len(fresh))
        return ids

    async def _send_once(self, m: Message) -> None:
        """Publish a new message; remember its id once the broker confirmed it,
        so that the client's retry of a send that failed midway skips it."""
        await self._publish(m, attempts=0, history=[])
        self._confirmed[m.id] = None
        if len(self._confirmed) > _CONFIRMED_KEPT:
            del self._confirmed[next(iter(self._confirmed))]

    async def _dedup(self, queue: str, m: Message, window_ms: int) -> str:
        """The id that owns ``m.dedup_key`` once this send's claim was applied."""
        now = now_ms()
        known = self.state.dedup.get((queue, str(m.dedup_key)))
        if known is not None and known[1] > now:
            return known[0]
        rec = {
            "t": "dedup",
            "q": queue,
            "k": m.dedup_key,
            "id": m.id,
            "at": now,
            "until": now + window_ms,
        }
        await self.streams.append(self.names.dedup, rec, applied=True)
        return self.state.dedup[(queue, str(m.dedup_key))][0]

    @translated
    async def claim(
        self, queue: str, max_messages: int, lease_ms: int, consumer: str
    ) -> list[Delivery]:
        policy = await self._policy(queue)
        await self._revive()
        await self._expire_local()
        # The gauge counts the claim before any message leaves the queue, so a
        # reader never sees a claimed message in neither ready nor in flight.
        self._reserved[queue] = self._reserved.get(queue, 0) + max_messages
        out: list[Delivery] = []
        try:
            await self.streams.append(self.names.live, self._gauge())
            self._last_gauge = {}  # the next flush publishes the gauge after it
            for getter, incoming in await self._take(queue, max_messages):
                got = await self._resolve(queue, policy, incoming)
                if got is not None:
                    out.append(self._lease(got, incoming, lease_ms, consumer, getter))
        finally:
            self._reserved[queue] -= max_messages
            self._dirty.set()
        return sorted(out, key=lambda d: d.id)  # oldest first across the getters

    async def _take(
        self, queue: str, n: int
    ) -> list[tuple[int, AbstractIncomingMessage]]:
        """Up to ``n`` messages by ``basic.get``, on up to GETTERS channels at
        once (one get is one round trip; a channel answers one at a time)."""
        first = self._next_getter
        self._next_getter = (first + 1) % GETTERS
        shares = [n // GETTERS + (1 if i < n % GETTERS else 0) for i in range(GETTERS)]
        parts = await asyncio.gather(
            *(
                self._take_on((first + i) % GETTERS, queue, share)
                for i, share in enumerate(shares)
                if share
            )
        )
        return [item for part in parts for item in part]

    async def _take_on(
        self, getter: int, queue: str, n: int
    ) -> list[tuple[int, AbstractIncomingMessage]]:
        source = await self._getter_queue(getter, queue)
        taken: list[tuple[int, AbstractIncomingMessage]] = []
        while len(taken) < n:
            incoming = await source.get(no_ack=False, fail=False)
            if incoming is None:
                break
            taken.append((getter, incoming))
        return taken

    def _lease(
        self,
        got: Unpacked,
        incoming: AbstractIncomingMessage,
        lease_ms: int,
        consumer: str,
        getter: int,
    ) -> Delivery:
        expires = now_ms() + lease_ms
        msg = replace(got.message, attempts=got.message.attempts + 1)
        token = new_token()
        delivery = Delivery(
            msg, make_receipt(msg.id, token), from_ms(expires), consumer
        )
        self._leases[token] = _Lease(incoming, delivery, got.history, expires, getter)
        return delivery

    @translated
    async def wait(self, queue: str, timeout: float) -> None:
        ready = await self._ready(queue)
        deadline = asyncio.get_running_loop().time() + timeout
        pause = _WAIT_FIRST_S
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, pause))
            pause = min(pause * 2, _WAIT_MAX_S)
            declared = await ready.declare()
            if declared.message_count or self._lease_ran_out(queue):
                return

    def _lease_ran_out(self, queue: str) -> bool:
        """Whether a lease this process holds on ``queue`` ran out (a claim
        would make its message visible again)."""
        now = now_ms()
        return any(
            lease.expires <= now and lease.delivery.queue == queue
            for lease in self._leases.values()
        )

    @translated
    async def ack(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        lost: list[Delivery] = []
        for d in deliveries:
            try:
                await self._finish(*self._held(d))
            except LeaseLost:
                lost.append(d)
                continue
            self._count(d.queue, acked=1)
        return lost

    @translated
    async def retry(
        self, delivery: Delivery, delay_ms: int, entry: HistoryEntry
    ) -> None:
        token, lease = self._held(delivery)
        msg = replace(lease.delivery.message, available_at=from_ms(now_ms() + delay_ms))
        await self._publish(msg, attempts=msg.attempts, history=[*lease.history, entry])
        await self._finish(token, lease)
        self._count(delivery.queue, retried=1)

    @translated
    async def dead_letter(
        self, delivery: Delivery, reason: str, entry: HistoryEntry
    ) -> None:
        token, lease = self._held(delivery)
        self._leases.pop(token, None)
        self._dirty.set()
        msg = lease.delivery.message
        await self._bury(lease.incoming, msg, [*lease.history, entry], reason)

    @translated
    async def release(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            try:
                token, lease = self._held(d)
            except LeaseLost:
                continue
            msg = replace(lease.delivery.message, available_at=from_ms(now_ms()))
            attempts = max(0, msg.attempts - 1)
            await self._publish(msg, attempts=attempts, history=lease.history)
            with contextlib.suppress(LeaseLost):
                await self._finish(token, lease)

    @translated
    async def extend(self, delivery: Delivery, lease_ms: int) -> Delivery:
        _, lease = self._held(delivery)
        lease.expires = now_ms() + lease_ms
        lease.delivery = replace(
            lease.delivery, lease_expires_at=from_ms(lease.expires)
        )
        return replace(delivery, lease_expires_at=lease.delivery.lease_expires_at)
