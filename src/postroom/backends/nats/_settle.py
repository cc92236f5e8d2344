"""Settling deliveries on JetStream: ack, retry, release, extend, dead letter.

A retry, a release or a dead letter stores a new copy (or the dead letter) first
and acks the held one after: a crash between the two leaves both (at-least-once).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from dataclasses import replace
from typing import Any

from ...model.errors import LeaseLost
from ...model.message import (
    Delivery,
    HistoryEntry,
    from_ms,
    now_ms,
)
from ...model.settlement import Settlement
from .._common import lease_lost
from ._leases import (
    GRACE_MS,
    Lease,
    delivered_count,
    make_receipt,
    stream_of,
    stream_seq,
)
from ._names import valid_id
from ._records import Meta, dead_letter_headers, meta_of
from ._send import Sending

__all__ = ["Settling"]


class Settling(Sending):
    """What ends or lengthens a lease."""

    # -- settling ------------------------------------------------------------------

    def _check(self, delivery: Delivery) -> tuple[str, Lease | None]:
        """What :meth:`hold` knows without the server: the ack subject, and the
        lease when this process holds it (``None``: the stream must be read)."""
        try:
            reply, lease = self.leases.check(delivery.receipt)
        except LeaseLost:
            raise lease_lost(delivery.id) from None
        subject = self._lane_subject(delivery.queue, stream_of(reply), delivery.id)
        if subject is None or not valid_id(delivery.id):
            raise lease_lost(delivery.id)
        if lease is not None and lease.message_id != delivery.id:
            raise lease_lost(delivery.id)
        return reply, lease

    async def hold(self, delivery: Delivery) -> tuple[str, Lease | None]:
        """The ack subject of a delivery whose lease is live; :class:`LeaseLost`.

        A lease this process does not hold (its receipt came from another one) is
        checked against the stream: the message must still be stored at the
        receipt's sequence, so that a receipt of a deleted and created-again
        queue never acks another message."""
        reply, lease = self._check(delivery)
        if lease is not None:
            return reply, lease
        stream = stream_of(reply)
        subject = self._lane_subject(delivery.queue, stream, delivery.id) or ">"
        seq = stream_seq(reply)
        raw = await self.jet.get(stream, subject, seq=seq)
        meta = meta_of(raw.headers) if raw is not None else None
        if raw is None or raw.seq != seq or meta is None or meta.id != delivery.id:
            raise lease_lost(delivery.id)
        return reply, None

    def _lane_subject(self, queue: str, stream: str, message_id: str) -> str | None:
        """The subject filter that finds message ``message_id`` (``*``: any) on
        a stream that deliveries of ``queue`` come from; ``None`` for another."""
        n = self.names
        if stream == n.stream(queue):
            return n.subject(queue, message_id)
        if stream == n.prio_stream(queue):
            return n.prio_subject(queue)
        return None

    async def _held_meta(
        self, delivery: Delivery, reply: str, lease: Lease | None
    ) -> Meta:
        """The meta of the held copy, with the lease expiries it went through."""
        queue = delivery.queue
        meta = lease.extra if lease is not None else None
        if not isinstance(meta, Meta):
            seq = stream_seq(reply)
            stream = stream_of(reply)
            subject = self._lane_subject(queue, stream, "*") or ">"
            raw = await self.jet.get(stream, subject, seq=seq)
            found = meta_of(raw.headers) if raw is not None and raw.seq == seq else None
            if found is None:
                raise lease_lost(delivery.id)
            meta = found
        return meta.with_expiries(delivered_count(reply) - 1, now_ms())

    async def _checks(
        self, deliveries: Sequence[Delivery]
    ) -> list[tuple[str, Lease | None] | BaseException]:
        """:meth:`hold` of each delivery (or its error); the server is asked
        only about leases this process does not hold."""
        checks: list[tuple[str, Lease | None] | BaseException] = []
        remote: list[int] = []
        for i, d in enumerate(deliveries):
            try:
                checked = self._check(d)
            except LeaseLost as exc:
                checks.append(exc)
                continue
            checks.append(checked)
            if checked[1] is None:
                remote.append(i)
        if remote:
            found = await asyncio.gather(
                *(self.hold(deliveries[i]) for i in remote), return_exceptions=True
            )
            for i, got in zip(remote, found, strict=True):
                checks[i] = got
        return checks

    async def ack(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        if not deliveries:
            return []
        later: list[Coroutine[Any, Any, None]] = []
        try:
            return await self._ack(deliveries, later)
        finally:
            await _all(later)

    async def _ack(
        self, deliveries: Sequence[Delivery], later: list[Coroutine[Any, Any, None]]
    ) -> list[Delivery]:
        """:meth:`ack`; the removals from G of the heads let out go to ``later``
        (awaited by the caller)."""
        lost: list[Delivery] = []
        held: list[tuple[Delivery, str]] = []
        checks = await self._checks(deliveries)
        seen: set[str] = set()
        for d, checked in zip(deliveries, checks, strict=True):
            if isinstance(checked, LeaseLost) or (
                not isinstance(checked, BaseException) and checked[0] in seen
            ):
                lost.append(d)
            elif isinstance(checked, BaseException):
                raise checked
            else:
                seen.add(checked[0])
                held.append((d, checked[0]))
        by_stream: dict[str, list[str]] = {}  # by stream and consumer
        counts: dict[str, int] = {}
        for d, reply in held:
            by_stream.setdefault(reply.rsplit(".", 5)[0], []).append(reply)
            counts[d.queue] = counts.get(d.queue, 0) + 1
        heads = [(d, d.message.group) for d, _ in held if d.message.group]
        # What G holds after each head is read while the acks go out.
        peeks = asyncio.gather(*(self.peek_next(d.queue, g, d.id) for d, g in heads))
        try:
            if len(counts) == 1 and len(by_stream) == 1:
                [(queue, n)] = counts.items()
                [replies] = by_stream.values()
                acking = self.jet.ack_all(replies)
                await self._counted(queue, "acked", n, acking, weight=n)
            else:
                await asyncio.gather(*(self.jet.ack_all(r) for r in by_stream.values()))
                for queue, n in counts.items():
                    await self.tally.add(self.count_key(queue, "acked"), {"acked": n})
        finally:
            aheads = await peeks  # never fails: a failed read is None
        self.leases.finish_all([reply for _, reply in held])
        if heads:  # each group's next message goes out
            await asyncio.gather(
                *(
                    self.let_out(d.queue, g, d.id, ahead, later)
                    for (d, g), ahead in zip(heads, aheads, strict=True)
                )
            )
        return lost

    async def settle(self, batch: Settlement) -> tuple[list[Delivery], list[Delivery]]:
        """As :meth:`Backend.settle`; acks that let group heads out overlap the
        claim with the heads' removals from G."""
        c = batch.claim
        grouped = any(d.message.group for d in batch.acks)
        if c is None or batch.reruns or batch.burials or not grouped:
            # Plain acks are answered before the claim pulls: a worker never
            # holds more leases than its slots, even for a round trip.
            return await super().settle(batch)
        claim = self.claim(c.queue, c.max_messages, c.lease_ms, c.consumer)
        # The claim must find the heads let out: it goes with their removals
        # from G, after their copies are stored.
        later: list[Coroutine[Any, Any, None]] = []
        try:
            lost = await self._ack(batch.acks, later)
        except BaseException:
            claim.close()
            await _all(later)
            raise
        got, removed = await asyncio.gather(claim, _all(later), return_exceptions=True)
        for failed in (got, removed):
            if isinstance(failed, BaseException):
                raise failed
        assert isinstance(got, list)
        return lost, got

    async def _replace(
        self, delivery: Delivery, meta: Meta, reply: str, tag: str
    ) -> None:
        """Store ``meta``'s new copy, then ack the held one (a crash between the
        two leaves both: at-least-once)."""
        msg_id = f"{meta.id}.{stream_seq(reply)}.{delivered_count(reply)}.{tag}"
        await self.store(delivery.queue, meta, delivery.body, msg_id)
        await self.jet.ack(reply)
        self.leases.finish(reply)

    async def retry(
        self, delivery: Delivery, delay_ms: int, entry: HistoryEntry
    ) -> None:
        reply, lease = await self.hold(delivery)
        meta = await self._held_meta(delivery, reply, lease)
        copy = replace(
            meta,
            base=delivery.attempts,
            available_ms=now_ms() + delay_ms,
            history=[*meta.history, entry],
        )
        await self._replace(delivery, copy, reply, "t")
        await self.tally.add(self.count_key(delivery.queue, "retried"), {"retried": 1})

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            try:
                reply, lease = await self.hold(d)
                meta = await self._held_meta(d, reply, lease)
            except LeaseLost:
                continue
            visible = min(meta.available_ms, now_ms())
            copy = replace(meta, base=max(0, d.attempts - 1), available_ms=visible)
            await self._replace(d, copy, reply, "r")

    async def extend(self, delivery: Delivery, lease_ms: int) -> Delivery:
        reply, lease = await self.hold(delivery)
        policy = await self.policy(delivery.queue)
        end = now_ms() + lease_ms
        await self.leases.extend(
            reply, lease, end, self.jet.ack, policy.lease_ms + GRACE_MS, delivery.id
        )
        return replace(
            delivery, receipt=make_receipt(end, reply), lease_expires_at=from_ms(end)
        )

    # -- dead letters --------------------------------------------------------------

    async def bury(
        self,
        queue: str,
        meta: Meta,
        body: bytes,
        reply: str,
        reason: str,
        attempts: int,
    ) -> None:
        """Store a dead letter of the held copy, then remove the copy."""
        n = self.names
        headers = dead_letter_headers(
            meta, queue=queue, reason=reason, attempts=attempts, dead_ms=now_ms()
        )
        headers["Nats-Msg-Id"] = (
            f"{meta.id}.{stream_seq(reply)}.{delivered_count(reply)}.x"
        )
        await self.jet.publish(
            n.dead_subject(queue, meta.id),
            body,
            headers,
            stream=n.dead_stream(queue),
            queue=queue,
        )
        await self.jet.ack(reply, b"+TERM")
        self.leases.finish(reply)
        key = self.count_key(queue, "dead_lettered")
        await self.tally.add(key, {"dead_lettered": 1})
        if meta.group is not None:
            await self.let_out(queue, meta.group, finished=meta.id)

    async def dead_letter(
        self, delivery: Delivery, reason: str, entry: HistoryEntry
    ) -> None:
        reply, lease = await self.hold(delivery)
        meta = await self._held_meta(delivery, reply, lease)
        meta = replace(meta, history=[*meta.history, entry])
        await self.bury(
            delivery.queue, meta, delivery.body, reply, reason, delivery.attempts
        )


async def _all(removals: list[Coroutine[Any, Any, None]]) -> None:
    """Await removals of let-out heads from G; the first error is raised after
    all were tried."""
    done = await asyncio.gather(*removals, return_exceptions=True)
    for got in done:
        if isinstance(got, BaseException):
            raise got
