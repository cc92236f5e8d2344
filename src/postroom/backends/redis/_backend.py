"""``redis://``, ``rediss://``, ``valkey://``: the Redis (>= 6.2) and Valkey backend.

Every operation family is one atomic Lua script over the keys of one queue, which
share the hash tag ``{prefix:queue}``. Consumers resolve expired leases themselves
(inside ``claim``, ``stats`` and ``dead_letters``); waiting consumers block on a
per-queue notification list (``BLPOP``) that every state change pushes to, with a
timeout bounded by the next due delayed message or lease expiry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import anyio.lowlevel

import redis.exceptions

from ...model.errors import QueueNotFound
from ...model.message import (
    Delivery,
    HistoryEntry,
    Message,
    from_ms,
    now_ms,
    to_ms_dt,
)
from .._common import lease_lost, new_token, parse_receipt
from ..base import Capabilities
from ._dead import DeadLettersMixin
from ._inspect import RedisInspect
from ._records import (
    deliveries_from,
    encode_message,
)
from ._scripts import FIRST_TRY, Call
from ._topics import TopicsMixin
from ._translate import translated

__all__ = ["RedisBackend"]


log = logging.getLogger(__name__)

_SEND_CHUNK = 1000  # messages per enqueue script call (keeps each call short)
_MAX_WAKE = 16  # tokens kept on a notification list at most (as lib.lua's MAX_WAKE)
_CLAIM_MAX = 1000
_MAX_UNSURE = 10_000


class RedisBackend(DeadLettersMixin, TopicsMixin, RedisInspect):
    """Queues, dead letters and topics in Redis or Valkey, one Lua script per step."""

    capabilities = Capabilities(native_wakeups=True, worker_registry=True, samples=True)

    # -- messages ------------------------------------------------------------------

    @translated
    async def enqueue(
        self, queue: str, messages: Sequence[Message], *, dedup_window_ms: int
    ) -> list[str]:
        one = messages[0] if len(messages) == 1 else None
        if (
            one
            and not one.dedup_key
            and not self.cluster
            and one.id not in self._unsure
        ):
            return [await self._enqueue_one(queue, one)]
        return await self._enqueue_scripted(queue, messages, dedup_window_ms)

    async def _enqueue_scripted(
        self, queue: str, messages: Sequence[Message], dedup_window_ms: int
    ) -> list[str]:
        """Store messages through the enqueue script (which stores an id already
        live only once, so a retried send is harmless)."""
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

    def _remember_unsure(self, mid: str) -> None:
        self._unsure[mid] = None
        if len(self._unsure) > _MAX_UNSURE:
            del self._unsure[next(iter(self._unsure))]

    async def _enqueue_one(self, queue: str, m: Message) -> str:
        """Store one message without a dedup key: the enqueue script's writes as
        plain commands in one MULTI/EXEC, which costs Redis a fraction of a script
        call (this is on the path of every single send's latency)."""
        policy, queued, live, msg, counters, notify = (
            self.key(queue, kind)
            for kind in ("policy", "queued", "live", "msg", "counters", "notify")
        )
        mid = m.id
        try:
            exists, *_ = await self.scripts.transaction(
                [
                    ("EXISTS", policy),
                    ("HSET", msg, mid, encode_message(m)),
                    ("ZADD", queued, to_ms_dt(m.available_at), mid),
                    ("ZADD", live, to_ms_dt(m.enqueued_at), mid),
                    ("HINCRBY", counters, "sent", 1),
                    ("LPUSH", notify, "1"),
                    ("LTRIM", notify, 0, _MAX_WAKE - 1),
                ],
                again=False,
            )
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            # It may have run before its reply was lost: the plain commands are
            # not sent again, the enqueue script is (it skips an id already
            # live). Until that succeeds, a retry of this id goes the same way.
            self._remember_unsure(mid)
            [stored] = await self._enqueue_scripted(queue, [m], 0)
            self._unsure.pop(mid, None)
            return stored
        if not exists:
            # The queue was never declared (or was deleted): take the writes back.
            await self.scripts.transaction(
                [
                    ("HDEL", msg, mid),
                    ("ZREM", queued, mid),
                    ("ZREM", live, mid),
                    ("HINCRBY", counters, "sent", -1),
                    ("DEL", notify),
                ]
            )
            raise QueueNotFound(queue)
        return mid

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
            args += (
                m.id,
                to_ms_dt(m.available_at),
                to_ms_dt(m.enqueued_at),
                m.dedup_key or "",
                encode_message(m),
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
        """Deliveries of a claim reply; remember when the queue is next due."""
        if not reply[1]:
            self._due[queue] = int(reply[0])
            return []
        self._due[queue] = int(reply[2])
        return deliveries_from(queue, reply[1], token, int(reply[0]), consumer)

    @translated
    async def wait(self, queue: str, timeout: float) -> None:
        # Let work the caller just started (handlers of the messages it claimed)
        # run before this coroutine spends time on building the next wait.
        await anyio.lowlevel.checkpoint()
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

    def _ack_calls(
        self, deliveries: Sequence[Delivery]
    ) -> tuple[list[Call], list[list[Delivery]]]:
        """The ack script calls (per queue, in chunks) and the deliveries of each."""
        by_queue: dict[str, list[Delivery]] = {}
        for d in deliveries:
            by_queue.setdefault(d.queue, []).append(d)
        calls: list[Call] = []
        groups: list[list[Delivery]] = []
        for queue, group in by_queue.items():
            for i in range(0, len(group), _SEND_CHUNK):
                chunk = group[i : i + _SEND_CHUNK]
                args = [FIRST_TRY, *_receipt_args(chunk)]
                calls.append(("ack", self.script_keys(queue), args))
                groups.append(chunk)
        return calls, groups

    @staticmethod
    def _acked(groups: list[list[Delivery]], results: Sequence[Any]) -> list[Delivery]:
        """The lost leases reported by ack replies (an error reply is raised)."""
        lost: list[Delivery] = []
        for group, reply in zip(groups, results, strict=True):
            if isinstance(reply, Exception):
                raise reply
            lost += [group[pos - 1] for pos in reply]
        return lost

    @translated
    async def ack(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        calls, groups = self._ack_calls(deliveries)
        return self._acked(groups, await self.scripts.run_many(calls))

    @translated
    async def ack_and_claim(
        self,
        deliveries: Sequence[Delivery],
        queue: str,
        max_messages: int,
        lease_ms: int,
        consumer: str,
    ) -> tuple[list[Delivery], list[Delivery]]:
        """The ack scripts and the claim script pipelined: one round trip."""
        if not deliveries or queue in self._ahead.held:  # hand out those first
            return await super().ack_and_claim(
                deliveries, queue, max_messages, lease_ms, consumer
            )
        calls, groups = self._ack_calls(deliveries)
        token = new_token()
        args = (now_ms(), min(max_messages, _CLAIM_MAX), lease_ms, token, consumer)
        calls.append(("claim", self.script_keys(queue), args))
        results = await self.scripts.run_many(calls, raise_errors=False)
        lost = self._acked(groups, results[:-1])
        reply = results[-1]
        if isinstance(reply, Exception):
            if _no_queue(reply):
                raise QueueNotFound(queue) from None
            raise reply
        return lost, self._claimed(queue, reply, token, consumer)

    async def _held_call(self, name: str, delivery: Delivery, *args: Any) -> int:
        mid, token = parse_receipt(delivery.receipt)
        result = await self.scripts.run(
            name, self.script_keys(delivery.queue), (now_ms(), mid, token, *args)
        )
        if int(result) < 0 or (name != "extend" and int(result) == 0):
            raise lease_lost(mid)
        return int(result)

    @translated
    async def retry(
        self, delivery: Delivery, delay_ms: int, entry: HistoryEntry
    ) -> None:
        await self._held_call("retry", delivery, delay_ms, json.dumps(entry.to_dict()))

    @translated
    async def dead_letter(
        self, delivery: Delivery, reason: str, entry: HistoryEntry
    ) -> None:
        await self._held_call(
            "dead_letter", delivery, reason, json.dumps(entry.to_dict())
        )

    @translated
    async def release(self, deliveries: Sequence[Delivery]) -> None:
        by_queue: dict[str, list[Delivery]] = {}
        for d in deliveries:
            by_queue.setdefault(d.queue, []).append(d)
        now = now_ms()
        calls: list[Call] = [
            ("release", self.script_keys(q), [now, *_receipt_args(group)])
            for q, group in by_queue.items()
        ]
        if calls:
            await self.scripts.run_many(calls)

    @translated
    async def extend(self, delivery: Delivery, lease_ms: int) -> Delivery:
        expires = await self._held_call("extend", delivery, lease_ms)
        return Delivery(
            delivery.message, delivery.receipt, from_ms(expires), delivery.consumer
        )


def _no_queue(exc: Exception) -> bool:
    return isinstance(exc, redis.exceptions.ResponseError) and str(exc).startswith(
        "NOQUEUE"
    )


def _receipt_args(deliveries: Sequence[Delivery]) -> list[str]:
    args: list[str] = []
    for d in deliveries:
        args += parse_receipt(d.receipt)
    return args
