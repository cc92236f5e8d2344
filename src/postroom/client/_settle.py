"""Settling a batch of outcomes with the next receive, in one backend call."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from ..model import arguments as check
from ..model.errors import QueueNotFound
from ..model.message import (
    Delivery,
    ErrorInfo,
    HistoryEntry,
    QueuePolicy,
    from_ms,
    now_ms,
)
from ..model.retry import seconds as to_seconds
from ..model.retry import to_ms
from ..model.settlement import Burial, Claim, Failure, Rerun, Settled, Settlement
from ._base import ClientBase, error_info

__all__ = ["Settling"]

_RETRIED = ("failed", "timeout")


class Settling(ClientBase):
    """Acks, failed attempts and the next receive of a consumer."""

    def _entry(
        self,
        delivery: Delivery,
        outcome: str,
        error: BaseException | ErrorInfo | str | None,
    ) -> HistoryEntry:
        return HistoryEntry(
            at=from_ms(now_ms()),
            consumer=delivery.consumer or self.consumer,
            outcome=outcome,
            error=error_info(error),
        )

    def _decision(self, f: Failure, policy: QueuePolicy) -> Rerun | Burial:
        """A failed attempt retried after its delay (the given one, else the
        queue's backoff), or dead-lettered: a dead letter reason as outcome, or
        the attempts used up."""
        d = f.delivery
        entry = self._entry(d, f.outcome, f.error)
        if f.outcome not in _RETRIED or d.attempts >= policy.max_attempts:
            return Burial(d, f.outcome, entry)
        delay_s = to_seconds(f.delay)
        if delay_s is None:
            delay_s = policy.backoff.delay(d.attempts)
        return Rerun(d, round(max(delay_s, 0.0) * 1000), entry)

    async def settle(
        self,
        acks: Sequence[Delivery] = (),
        failures: Sequence[Failure] = (),
        receive: str | None = None,
        max_messages: int = 1,
        visibility_timeout: float | timedelta | None = None,
    ) -> Settled:
        """Ack ``acks``, record ``failures`` (each retried, or dead-lettered when
        its attempts are used up or its outcome is a dead letter reason) and,
        with ``receive``, lease up to ``max_messages`` of that queue (no
        waiting): in one round trip where the backend allows.

        A consumer's steady state. Leases lost are reported in
        :attr:`Settled.lost`, not raised. The acks and failures count even when
        the receive raises (e.g. :class:`QueueNotFound`).
        """
        check.check_settle(acks, failures, receive, max_messages, visibility_timeout)
        batch, lost, dead = await self._decide(failures)
        claim: Claim | None = None
        missing: QueueNotFound | None = None
        if receive is not None:
            try:
                policy = await self.queue_policy(receive)
                lease_ms = to_ms(visibility_timeout) or policy.lease_ms
                claim = Claim(receive, max_messages, lease_ms, self.consumer)
            except QueueNotFound as exc:
                missing = exc
        batch = Settlement(list(acks), batch.reruns, batch.burials, claim)
        if batch.writes == 0 and claim is None:
            if missing is not None:
                raise missing
            return Settled(lost)
        lost_now, received = await (await self._b()).settle(batch)
        if missing is not None:
            raise missing
        gone = {d.receipt for d in lost_now}
        dead = [d for d in dead if d.receipt not in gone]
        return Settled(lost + lost_now, dead, received)

    async def _decide(
        self, failures: Sequence[Failure]
    ) -> tuple[Settlement, list[Delivery], list[Delivery]]:
        """Each failure as a retry or a dead letter: ``(batch, lost, buried)``;
        the failures of a queue that no longer exists are lost."""
        reruns: list[Rerun] = []
        burials: list[Burial] = []
        lost: list[Delivery] = []
        for f in failures:
            d = f.delivery
            try:
                policy = await self.queue_policy(d.queue)
            except QueueNotFound:
                lost.append(d)
                continue
            step = self._decision(f, policy)
            if isinstance(step, Burial):
                burials.append(step)
            else:
                reruns.append(step)
        return Settlement((), reruns, burials), lost, [b.delivery for b in burials]

    async def ack_and_receive(
        self,
        deliveries: Sequence[Delivery],
        queue: str,
        max_messages: int = 1,
        visibility_timeout: float | timedelta | None = None,
    ) -> tuple[list[Delivery], list[Delivery]]:
        """Ack ``deliveries`` and lease up to ``max_messages`` of ``queue`` (no
        waiting) in one round trip where the backend allows: a consumer's steady
        state. Returns ``(lost leases, received)``; the acks count even when the
        receive raises (e.g. :class:`QueueNotFound`)."""
        check.check_deliveries(deliveries)
        check.check_receive(queue, max_messages, visibility_timeout, 0.0)
        done = await self.settle(
            deliveries,
            receive=queue,
            max_messages=max_messages,
            visibility_timeout=visibility_timeout,
        )
        return done.lost, done.received
