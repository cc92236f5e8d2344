"""``amqp://``, ``amqps://``: the RabbitMQ (>= 3.10) backend.

Messages live in quorum queues (publisher confirms, durable), delayed ones in
per-delay TTL quorum queues that dead-letter back (at least once) when due.
Claims take messages that the broker pushed to a consumer with a prefetch window
(or by ``basic.get``), on a channel per queue (``_lanes``). A lease is an
unacknowledged AMQP delivery held by the process that claimed it:
the process ends it at the visibility timeout itself, and the broker ends it
when the process dies or hangs (connection closed or heartbeats missed), then
counts the redelivery (``x-delivery-count``). Everything AMQP cannot hold
(policies, dead letters, counters, lease gauges, dedup keys, rate-limit permits)
is a record in one of three streams that every process follows (``_state``);
grouped and prioritised messages live wholly in the meta stream (``_ordered``).
See ``docs/backends/rabbitmq.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import replace

import aiormq.exceptions

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
from ._lanes import Lane, Taken
from ._leasing import _Lease, unpack
from ._ordering import is_ordered
from ._records import Unpacked
from ._translate import DRIVER_ERRORS, translated

__all__ = ["RabbitBackend"]

_CONFIRMED_KEPT = 100_000  # ids of confirmed sends kept to skip a retried send


class RabbitBackend(AdminMixin):
    """RabbitMQ backend: quorum queues, TTL delay queues, streams for the rest."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._confirmed: dict[str, None] = {}

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
        ordered = [m for m in fresh if is_ordered(m)]
        if ordered:
            await self._send_ordered(queue, ordered, [])
            self._confirmed.update(dict.fromkeys(m.id for m in ordered))
        await asyncio.gather(*(self._send_once(m) for m in fresh if not is_ordered(m)))
        if fresh:
            self.streams.count(queue, sent=len(fresh))
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
        lane = await self._lane(queue)
        lane.used_at, lane.demand = now_ms(), max_messages
        if policy.rate_limit is not None:
            max_messages = self._likely_permits(queue, policy.rate_limit, max_messages)
            if not max_messages:
                return []
        firsts: list[Delivery] = []
        taken: list[Taken] = []
        if self._ordered_ready(queue):
            firsts = await self._claim_ordered(queue, max_messages, lease_ms, consumer)
            if len(firsts) == max_messages and not firsts[-1].message.priority:
                firsts, taken = await self._by_send_order(lane, firsts)
        wanted = max_messages - len(firsts) - len(taken)
        if wanted and policy.rate_limit is None and not taken:
            return firsts + await self._claim_plain(
                queue, policy, lane, wanted, lease_ms, consumer
            )
        if wanted:
            taken += await self._take(lane, wanted)
        if policy.rate_limit is not None and (firsts or taken):
            granted = await self._permits(
                queue, policy.rate_limit, len(firsts) + len(taken)
            )
            if granted < len(firsts):
                await self._settle_ordered("ol", firsts[granted:])
                firsts = firsts[:granted]
            kept = max(0, granted - len(firsts))
            lane.put_back(taken[kept:])
            taken = taken[:kept]
        return firsts + await self._leased(queue, policy, taken, lease_ms, consumer)

    async def _claim_plain(
        self,
        queue: str,
        policy: QueuePolicy,
        lane: Lane,
        max_messages: int,
        lease_ms: int,
        consumer: str,
    ) -> list[Delivery]:
        """Up to ``max_messages`` of the queue's AMQP messages, leased."""
        taken = await self._take(lane, max_messages)
        return await self._leased(queue, policy, taken, lease_ms, consumer)

    async def _take(self, lane: Lane, max_messages: int) -> list[Taken]:
        """Up to ``max_messages`` messages of the lane's AMQP queue."""
        pushing = lane.consuming
        if pushing or max_messages > 1:
            # A batch claimer (a worker) gets a consumer: the broker pushes the
            # next messages while these are handled (a wider window when asked
            # for more). A claim of one alone takes one, by basic.get.
            await lane.consume(max_messages)
        taken = lane.take(max_messages)
        if taken and pushing:
            # The broker pushes what is ready to a running consumer: a claim
            # that found pushed messages returns them without a basic.get (a
            # round trip, and a log entry of a quorum queue, per message).
            return taken
        while len(taken) < max_messages:
            # Pushed messages arrive on this channel before the answer to a
            # get: a message that was visible is in one or the other.
            got = await lane.get()
            if got is not None:
                taken.append(got)
            taken += lane.take(max_messages - len(taken))
            if got is None:
                break
        return taken

    async def _leased(
        self,
        queue: str,
        policy: QueuePolicy,
        taken: list[Taken],
        lease_ms: int,
        consumer: str,
    ) -> list[Delivery]:
        """Messages taken from AMQP, leased (those whose attempts ran out are
        dead letters instead), oldest first."""
        out: list[Delivery] = []
        for t in taken:
            got_ = await self._resolve(queue, policy, unpack(queue, t), t.ack)
            if got_ is not None:
                out.append(self._lease(got_, t, lease_ms, consumer))
        return sorted(out, key=lambda d: d.id)  # oldest first

    def _lease(
        self, got: Unpacked, taken: Taken, lease_ms: int, consumer: str
    ) -> Delivery:
        expires = now_ms() + lease_ms
        msg = replace(got.message, attempts=got.message.attempts + 1)
        token = new_token()
        delivery = Delivery(
            msg, make_receipt(msg.id, token), from_ms(expires), consumer
        )
        self._leases[token] = _Lease(taken, delivery, got.history, expires)
        self._new_leases = True
        self._dirty.set()
        return delivery

    async def wait(self, queue: str, timeout: float) -> None:
        """Returns once the broker pushed a message of ``queue`` to this process
        (its consumer runs while somebody waits or claims), a lease this process
        holds on it ran out, or ``timeout``. No polling."""
        if self._lease_ran_out(queue) or self._ordered_ready(queue):
            return
        lane = await self._prepare_wait(queue)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        lane.waiters += 1
        try:
            while not lane.buffer and lane.consuming:
                remaining = deadline - loop.time()
                if remaining <= 0 or self._lease_ran_out(queue):
                    return
                if self._ordered_ready(queue):
                    return
                lane.arrived.clear()
                until = min(self._until_expiry(queue), self._ordered_wait(queue))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lane.arrived.wait(), min(remaining, until))
        finally:
            lane.waiters -= 1
            lane.used_at = now_ms()

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
        ordered, deliveries = self._split(deliveries)
        lost: list[Delivery] = []
        if ordered:
            lost = await self._settle_ordered("oa", ordered)
            for d in ordered:
                if d not in lost:
                    self.streams.count(d.queue, acked=1)
        by_lane: dict[Lane, list[tuple[int, Delivery]]] = {}
        for d in deliveries:
            try:
                token, lease = self._held(d)
            except LeaseLost:
                lost.append(d)
                continue
            del self._leases[token]
            by_lane.setdefault(lease.taken.lane, []).append((lease.taken.tag, d))
        self._dirty.set()
        for lane, held in by_lane.items():
            try:
                if lane.closed:
                    raise aiormq.exceptions.ChannelInvalidStateError(lane.name)
                await lane.ack(tag for tag, _ in held)  # one multiple ack at best
            except DRIVER_ERRORS:
                lost += [d for _, d in held]
                continue
            for _, d in held:
                self.streams.count(d.queue, acked=1)
        return lost

    @translated
    async def retry(
        self, delivery: Delivery, delay_ms: int, entry: HistoryEntry
    ) -> None:
        if self._split([delivery])[0]:
            return await self._retry_ordered(delivery, delay_ms, entry)
        token, lease = self._held(delivery)
        msg = replace(lease.delivery.message, available_at=from_ms(now_ms() + delay_ms))
        await self._publish(msg, attempts=msg.attempts, history=[*lease.history, entry])
        await self._finish(token, lease)
        self.streams.count(delivery.queue, retried=1)

    @translated
    async def dead_letter(
        self, delivery: Delivery, reason: str, entry: HistoryEntry
    ) -> None:
        if self._split([delivery])[0]:
            return await self._bury_ordered(delivery, reason, entry)
        token, lease = self._held(delivery)
        self._leases.pop(token, None)
        self._dirty.set()
        msg = lease.delivery.message
        await self._bury(lease.taken.ack, msg, [*lease.history, entry], reason)

    @translated
    async def release(self, deliveries: Sequence[Delivery]) -> None:
        ordered, deliveries = self._split(deliveries)
        if ordered:
            await self._settle_ordered("ol", ordered)
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
        if self._split([delivery])[0]:
            return await self._extend_ordered(delivery, lease_ms)
        _, lease = self._held(delivery)
        lease.expires = now_ms() + lease_ms
        lease.delivery = replace(
            lease.delivery, lease_expires_at=from_ms(lease.expires)
        )
        return replace(delivery, lease_expires_at=lease.delivery.lease_expires_at)
