"""``redis://``, ``rediss://``, ``valkey://``: the Redis (>= 6.2) and Valkey backend.

Every operation family is one atomic Lua script over the keys of one queue, which
share the hash tag ``{prefix:queue}``. Consumers resolve expired leases themselves
(inside ``claim``, ``stats`` and ``dead_letters``); waiting consumers block on a
per-queue notification list (``BLPOP``) that every state change pushes to, with a
timeout bounded by the next due delayed message or lease expiry.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import redis.exceptions

from ...model.errors import NotSupported, QueueNotFound
from ...model.message import (
    Delivery,
    HistoryEntry,
    Message,
    from_ms,
    now_ms,
    to_ms_dt,
)
from ...model.settlement import Burial, Rerun, Settlement
from .._common import lease_lost, new_token, parse_receipt
from ..base import ORDERED, Capabilities
from ._dead import DeadLettersMixin
from ._inspect import RedisInspect
from ._plain import (
    Command,
    PackedPlain,
    plain_one,
    plain_outcome,
    undo_commands,
)
from ._records import (
    deliveries_from,
    encode_message,
    order_args,
)
from ._scripts import Call
from ._settle import BURY, ack_calls, fail_calls, lost_of, receipt_args
from ._topics import TopicsMixin
from ._translate import backend_error, translated

__all__ = ["RedisBackend"]


log = logging.getLogger(__name__)

_SEND_CHUNK = 1000  # messages per enqueue script call (keeps each call short)
_CLAIM_MAX = 1000
_PACKED_QUEUES = 4096  # queues whose packed plain sends are kept


class RedisBackend(DeadLettersMixin, TopicsMixin, RedisInspect):
    """Queues, dead letters and topics in Redis or Valkey, one Lua script per step."""

    capabilities = Capabilities(
        native_wakeups=True, worker_registry=True, samples=True, **ORDERED
    )

    # -- messages ------------------------------------------------------------------

    @translated
    async def enqueue(
        self, queue: str, messages: Sequence[Message], *, dedup_window_ms: int
    ) -> list[str]:
        """Store messages through the enqueue script, one EVALSHA per chunk (a
        single send is one command and one reply). The script stores an id
        already live only once, so a send retried after a lost reply is
        harmless."""
        calls = [
            self._enqueue_call(
                queue, messages[i : i + _SEND_CHUNK], dedup_window_ms, "send"
            )
            for i in range(0, len(messages), _SEND_CHUNK)
        ]
        try:
            results = await self.scripts.run_many(calls)
        except redis.exceptions.ResponseError as exc:
            if _no_queue(exc):
                raise QueueNotFound(queue) from None
            raise
        return [mid.decode() for chunk in results for mid in chunk]

    def _plain_follow_up(
        self, queue: str, m: Message, replies: list[Any], trimmed: bool
    ) -> tuple[list[Command], bool]:
        """What to send after a plain send: its undo when the queue did not
        exist (then ``True``), or a trim of a wake-up list grown long."""
        length = plain_outcome(replies)
        if length is None:
            return undo_commands(self.key, queue, m), True
        return self._wake.pushed(self.key, queue, length, trimmed), False

    def _packed_plain(self, queue: str, trim: bool) -> PackedPlain:
        """The packed plain send of ``queue`` (built once per queue)."""
        packed = self._plain.get((queue, trim))
        if packed is None:
            if len(self._plain) >= _PACKED_QUEUES:
                self._plain.clear()
            packed = self._plain[queue, trim] = PackedPlain(self.key, queue, trim=trim)
        return packed

    def enqueue_blocking(
        self, queue: str, messages: Sequence[Message], *, dedup_window_ms: int
    ) -> list[str]:
        """:meth:`enqueue` from the caller's thread, down a blocking connection
        (not on a Redis Cluster): the same script call, or for a lone send
        without dedup key, group or priority its writes as plain commands in one
        MULTI/EXEC, which costs Redis a fraction of the script (``_plain.py``;
        over asyncio, reading their replies costs the client more than that)."""
        if self.cluster or self._scripts is None or len(messages) > _SEND_CHUNK:
            raise NotSupported("no blocking send here: use the event loop")
        one = plain_one(messages, self._unsure)
        if one is not None:
            trim = self._wake.trim_due(queue)
            plain = self._packed_plain(queue, trim)
            replies = self.direct.packed(plain.packed(one), plain.count)
            if replies is not None:
                try:
                    follow, missing = self._plain_follow_up(queue, one, replies, trim)
                except redis.exceptions.RedisError as exc:  # an error reply
                    self._unsure.add(one.id)  # whatever ran, the script goes next
                    raise backend_error(exc, self.where) from exc
                if follow:
                    self.direct.commands(follow)
                if missing:
                    raise QueueNotFound(queue)
                return [one.id]
            self._unsure.add(one.id)  # it may have run: the script goes next
        name, keys, args = self._enqueue_call(queue, messages, dedup_window_ms, "send")
        sha, source = self.scripts.script(name)
        try:
            ids = self.direct.evalsha(sha, source, keys, args)
        except redis.exceptions.ResponseError as exc:
            if _no_queue(exc):
                raise QueueNotFound(queue) from None
            raise backend_error(exc, self.where) from exc
        if one is not None:
            self._unsure.discard(one.id)
        return [mid.decode() for mid in ids]

    @translated
    async def fan_out(self, topic: str, copies: Sequence[Message]) -> int:
        """Store every copy of one publish in one pipelined round trip (each copy
        atomically on its own queue, which may live on another Cluster slot), then
        count the publish."""
        calls = [self._enqueue_call(m.queue, [m], 0, "send") for m in copies]
        results = await self.scripts.run_many(calls, raise_errors=False)
        stored = 0
        for result in results:
            if isinstance(result, Exception):
                if not _no_queue(result):
                    raise result
                continue
            stored += 1
        await self.record_publish(topic, stored)
        return stored

    def _enqueue_call(
        self, queue: str, messages: Sequence[Message], window_ms: int, mode: str
    ) -> Call:
        args: list[Any] = [now_ms(), window_ms, mode]
        for m in messages:
            available, enqueued = to_ms_dt(m.available_at), to_ms_dt(m.enqueued_at)
            args += (
                m.id,
                available,
                enqueued,
                m.dedup_key or "",
                *order_args(m.priority, m.group),
                encode_message(m, enqueued, available),
            )
        return ("enqueue", self.script_keys(queue), args)

    @translated
    async def claim(
        self, queue: str, max_messages: int, lease_ms: int, consumer: str
    ) -> list[Delivery]:
        n = min(max_messages, _CLAIM_MAX)
        ready, stale = self._ahead.take(queue, n, lease_ms, consumer)
        if stale:
            await self.release(stale)
        self._ahead.args[queue] = (n, lease_ms, consumer)
        if ready:
            return ready
        token = new_token()
        args = (now_ms(), n, lease_ms, token, consumer)
        try:
            reply = await self.scripts.run("claim", self.script_keys(queue), args)
        except redis.exceptions.ResponseError as exc:
            if _no_queue(exc):
                raise QueueNotFound(queue) from None
            raise
        return self._claimed(queue, reply, token, consumer)

    def _claimed(
        self, queue: str, reply: list[Any], token: str, consumer: str
    ) -> list[Delivery]:
        """Deliveries of a claim reply; remember when the queue is next due and
        when its rate limit grants the next delivery."""
        permit = int(reply[-1])
        if permit >= 0:
            self.permit_due_ms[queue] = permit
        elif self.permit_due_ms:
            self.permit_due_ms.pop(queue, None)
        if not reply[1]:
            self._due[queue] = int(reply[0])
            return []
        self._due[queue] = int(reply[2])
        return deliveries_from(queue, reply[1], token, int(reply[0]), consumer)

    @translated
    async def wait(self, queue: str, timeout: float) -> None:
        # Let work the caller just started (handlers of the messages it claimed)
        # run before this coroutine spends time on building the next wait.
        await asyncio.sleep(0)
        due = self._due.pop(queue, -1)
        if due >= 0:
            timeout = min(timeout, (due - now_ms()) / 1000)
        if timeout <= 0:
            return
        # BLPOP's timeout is in seconds with millisecond precision; 0 would block
        # forever, so never pass less than 1 ms.
        timeout = max(timeout, 0.001)
        notify = self.key(queue, "notify")
        args = self._ahead.args.get(queue)
        if args is None:
            await self.scripts.blpop(notify, timeout)
            return
        # Claim in the same round trip, the moment the wait ends ('*': the claim
        # reads the server's clock then). The next claim() hands the result out.
        n, lease_ms, consumer = args
        token = new_token()
        call = ("claim", self.script_keys(queue), ("*", n, lease_ms, token, consumer))
        try:
            result = await self.scripts.after_blpop(notify, timeout, call)
        except redis.exceptions.ResponseError as exc:
            if _no_queue(exc):
                return  # the next claim() says so
            raise
        if result is None:
            return
        got = self._claimed(queue, result, token, consumer)
        if got:
            stale = self._ahead.put(queue, lease_ms, consumer, got)
            if stale:
                await self.release(stale)

    @translated
    async def ack(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        calls, groups = ack_calls(self.script_keys, deliveries)
        return lost_of(groups, await self.scripts.run_many(calls))

    @translated
    async def settle(self, batch: Settlement) -> tuple[list[Delivery], list[Delivery]]:
        """The ack, fail and claim scripts pipelined: one round trip."""
        calls, groups = ack_calls(self.script_keys, batch.acks)
        more, more_groups = fail_calls(self.script_keys, batch.reruns, batch.burials)
        calls, groups = calls + more, groups + more_groups
        c = batch.claim
        # Deliveries claimed ahead by a wait are handed out first, by claim().
        ahead = c is not None and c.queue in self._ahead.held
        token = new_token()
        if c is not None and not ahead:
            n = min(c.max_messages, _CLAIM_MAX)
            args = (now_ms(), n, c.lease_ms, token, c.consumer)
            calls.append(("claim", self.script_keys(c.queue), args))
        results = await self.scripts.run_many(calls, raise_errors=False)
        lost = lost_of(groups, results[: len(groups)])
        if c is None:
            return lost, []
        if ahead:
            return lost, await self.claim(
                c.queue, c.max_messages, c.lease_ms, c.consumer
            )
        reply = results[-1]
        if isinstance(reply, Exception):
            if _no_queue(reply):
                raise QueueNotFound(c.queue) from None
            raise reply
        return lost, self._claimed(c.queue, reply, token, c.consumer)

    async def _fail_one(
        self, delivery: Delivery, delay_ms: int, reason: str, entry: HistoryEntry
    ) -> None:
        reruns = [Rerun(delivery, delay_ms, entry)] if delay_ms != BURY else []
        burials = [Burial(delivery, reason, entry)] if delay_ms == BURY else []
        [call], _ = fail_calls(self.script_keys, reruns, burials)
        if await self.scripts.run(*call):
            raise lease_lost(delivery.id)

    @translated
    async def retry(
        self, delivery: Delivery, delay_ms: int, entry: HistoryEntry
    ) -> None:
        await self._fail_one(delivery, delay_ms, "", entry)

    @translated
    async def dead_letter(
        self, delivery: Delivery, reason: str, entry: HistoryEntry
    ) -> None:
        await self._fail_one(delivery, BURY, reason, entry)

    @translated
    async def release(self, deliveries: Sequence[Delivery]) -> None:
        by_queue: dict[str, list[Delivery]] = {}
        for d in deliveries:
            by_queue.setdefault(d.queue, []).append(d)
        now = now_ms()
        calls: list[Call] = [
            ("release", self.script_keys(q), [now, *receipt_args(group)])
            for q, group in by_queue.items()
        ]
        if calls:
            await self.scripts.run_many(calls)

    @translated
    async def extend(self, delivery: Delivery, lease_ms: int) -> Delivery:
        mid, token = parse_receipt(delivery.receipt)
        args = (now_ms(), mid, token, lease_ms)
        expires = int(
            await self.scripts.run("extend", self.script_keys(delivery.queue), args)
        )
        if expires < 0:
            raise lease_lost(mid)
        return Delivery(
            delivery.message, delivery.receipt, from_ms(expires), delivery.consumer
        )


def _no_queue(exc: Exception) -> bool:
    return isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith(
        "NOQUEUE"
    )
