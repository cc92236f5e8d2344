"""Claims of queues with priorities or a rate limit.

A queue that uses neither is claimed by ``Messages.claim`` as before (its cached
policy says so: no extra round trip). Otherwise a claim

1. takes its permits from the queue's token bucket first (``_rate``: one
   compare-and-set), as many as it may deliver; none left: it returns nothing and
   says when the next permit comes (:meth:`Backend.rate_limit_wait`);
2. reads how many messages each priority holds (one stream info of the priority
   stream, with its subjects: one per priority) and pulls from the highest
   priority that has any, then the next, then priority 0 (the queue's stream),
   until it has what it may take. A priority whose last pull found its messages
   all leased is skipped for up to a second while nothing new is stored on the
   stream (a pull that finds nothing waits its 50 ms hold);
3. gives back the permits it found no message for.

Groups need nothing here: only a group's head is ever on these streams.
"""

from __future__ import annotations

import contextlib
import time

from ...model.message import Delivery, QueuePolicy, now_ms
from ._messages import _HOLD, _MOVE_EVERY, Messages
from ._names import CONSUMER, LEVELS, level_consumer, token

__all__ = ["Ordered"]

# How long a priority whose messages a pull found all leased is skipped while
# nothing new is stored: a message of it whose lease expired (the lease keeper
# NAKed it, or the server's AckWait ran out) waits at most that long before
# lower priorities stop going first.
_DRY_FOR = 1.0


class Ordered(Messages):
    """Priorities and rate limits on top of ``Messages``' claims."""

    _dry: dict[tuple[str, int], tuple[int, float]]

    def __init__(self, url: str) -> None:
        super().__init__(url)
        # (queue, priority) -> the priority stream's last sequence when a pull of
        # that priority found no more of its messages ready, and when.
        self._dry = {}

    def ordered(self, queue: str, policy: QueuePolicy) -> bool:
        """Whether claims of ``queue`` take this path."""
        return policy.rate_limit is not None or bool(self.lanes.get(queue))

    async def claim(
        self, queue: str, max_messages: int, lease_ms: int, consumer: str
    ) -> list[Delivery]:
        policy = await self.policy(queue)
        self.sweep_groups(queue)
        rate = policy.rate_limit
        if rate is None and not self.lanes.get(queue):
            if self.permit_due_ms:
                self.permit_due_ms.pop(queue, None)  # a limit was lifted
            return await super().claim(queue, max_messages, lease_ms, consumer)
        n = self.names
        ended = self.leases.take_ended(n.stream(queue))
        lapsed = self.leases.take_ended(n.prio_stream(queue))
        if lapsed:  # their messages are ready again
            self._dry = {k: v for k, v in self._dry.items() if k[0] != queue}
        await self.mark_ended(ended + lapsed)
        await self._drop_held(queue, policy)
        if rate is None:
            return await self._claim_lanes(
                queue, policy, max_messages, lease_ms, consumer
            )
        key = self.rate_key(queue)
        granted, wait_ms = await self.rates.take(key, rate, max_messages)
        if granted == 0:
            self.permit_due_ms[queue] = now_ms() + wait_ms
            return []
        got: list[Delivery] = []
        try:
            got = await self._claim_lanes(queue, policy, granted, lease_ms, consumer)
        finally:
            if len(got) < granted:
                with contextlib.suppress(Exception):
                    await self.rates.give_back(key, rate, granted - len(got))
                self.permit_due_ms.pop(queue, None)
            else:
                self.permit_due_ms[queue] = now_ms() + wait_ms
        return got

    async def _claim_lanes(
        self,
        queue: str,
        policy: QueuePolicy,
        wanted: int,
        lease_ms: int,
        consumer: str,
    ) -> list[Delivery]:
        """Up to ``wanted`` deliveries, highest priority first."""
        if not self.lanes.get(queue):
            msgs, sent = await self._pull(queue, wanted)
            return await self._deliver_all(
                queue, policy, msgs, sent, lease_ms, consumer
            )
        n = self.names
        if time.monotonic() - self._moved_at.get(queue, 0.0) >= _MOVE_EVERY:
            self._moved_at[queue] = time.monotonic()
            await self.move_due(queue)
        stream = n.prio_stream(queue)
        info = await self.jet.stream_info(stream, queue, n.prio_subject(queue))
        held, last = info.state.subjects or {}, int(info.state.last_seq or 0)
        got: list[Delivery] = []
        for level in LEVELS:
            if len(got) >= wanted:
                return got
            if not held.get(n.prio_subject(queue, level)) or self._dry_at(
                queue, level, last
            ):
                continue
            sent = now_ms()
            asked = wanted - len(got)
            msgs = await self.jet.pull(stream, level_consumer(level), asked, hold=_HOLD)
            if len(msgs) < asked:
                self._dry[queue, level] = (last, time.monotonic())
            else:
                self._dry.pop((queue, level), None)
            got += await self._deliver_all(
                queue, policy, msgs, sent, lease_ms, consumer
            )
        if len(got) < wanted:
            sent = now_ms()
            msgs = await self.jet.pull(
                n.stream(queue), CONSUMER, wanted - len(got), hold=_HOLD
            )
            got += await self._deliver_all(
                queue, policy, msgs, sent, lease_ms, consumer
            )
        return got

    def _dry_at(self, queue: str, level: int, last_seq: int) -> bool:
        """Whether a pull of ``level`` found none of its messages ready less
        than :data:`_DRY_FOR` ago, and nothing was stored on the priority
        stream since (its last sequence is the same): its messages are all
        leased, and a pull would wait its hold for nothing."""
        dry = self._dry.get((queue, level))
        if dry is None:
            return False
        if dry[0] == last_seq and time.monotonic() - dry[1] < _DRY_FOR:
            return True
        del self._dry[queue, level]
        return False

    async def _drop_held(self, queue: str, policy: QueuePolicy) -> None:
        """Give back what a held pull request brought before the queue took
        this path (its claims do not hand such messages out: they bypass
        priorities and the rate limit)."""
        held = self._held.pop(queue, None)
        if held is None:
            return
        if held.task is not None:
            with contextlib.suppress(Exception):
                await held.task
        await self._give_back(queue, policy, held, held.take(len(held.items)))

    async def wait(self, queue: str, timeout: float) -> None:
        """As ``Messages.wait``, but for a queue that takes this path: woken by
        any message stored for the queue (no held pull request, which would
        bypass priorities and the rate limit)."""
        cached = self._policies.get(queue)
        if cached is None or not self.ordered(queue, cached[0]):
            await super().wait(queue, timeout)
            return
        wait = max(0.0, min(timeout, 0.1))
        await self._woken(queue, wait, f"{self.names.prefix}.*.{token(queue)}.*")
