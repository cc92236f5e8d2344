"""The RabbitMQ backend's core: connection, leases, bookkeeping, queues.

See ``_backend`` for the design in short and ``docs/backends/rabbitmq.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)

from ...model.errors import BackendError, LeaseLost, QueueNotFound
from ...model.message import (
    DeadLetter,
    Delivery,
    HistoryEntry,
    Message,
    QueuePolicy,
    from_ms,
    now_ms,
    to_ms_dt,
)
from .._common import lease_expired_entry, parse_receipt
from ..base import Backend, Capabilities
from ._names import Names, delay_bucket, parse_url
from ._records import Unpacked, dead_record, message_dict, pack_message, unpack_message
from ._state import GAUGE_BEAT_MS, State
from ._streams import Streams
from ._translate import DRIVER_ERRORS, translated

__all__ = ["RabbitCore"]

log = logging.getLogger(__name__)

_QUORUM = {"x-queue-type": "quorum"}
_WAIT_POLL_S = 0.025  # a waiting consumer looks at the queue's depth this often
_TICK_S = 0.5
GETTERS = 4  # claim channels: a claim of N messages takes them on up to 4 at once
# The timer ends a lease this long after it ran out, so that an expired lease
# nobody claimed again can still be acked or extended (as on every backend);
# claim, stats and dead_letters end it at once.
LEASE_GRACE_MS = 1_000
# A gauge shows this many leased messages per queue to other processes' peek,
# with their body when it is at most GAUGE_BODY_MAX bytes.
GAUGE_SHOWN = 20
GAUGE_BODY_MAX = 1024
_TICK_ERRORS: tuple[type[BaseException], ...] = (*DRIVER_ERRORS, BackendError)


def _lost(mid: str) -> LeaseLost:
    return LeaseLost(
        f"lease of message {mid} was lost (it expired and the message was delivered "
        "again, it was already acked, or the connection that held it closed): "
        "raise the queue's visibility_timeout or call extend() during long work"
    )


@dataclass(slots=True)
class _Lease:
    incoming: AbstractIncomingMessage
    delivery: Delivery
    history: list[HistoryEntry]
    expires: int
    getter: int = -1  # the claim channel that holds the delivery


class RabbitCore(Backend):
    """Connection, lease bookkeeping and the queues of the RabbitMQ backend."""

    capabilities = Capabilities(durable=True, cross_process=True)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.settings = parse_url(url)
        self.names = Names(self.settings.prefix)
        self.where = url.split("@")[-1]
        self.state = State()
        self.streams = Streams(self.names, self.state)
        self.instance = os.urandom(6).hex()
        self._conn: AbstractRobustConnection | None = None
        self._ch: AbstractChannel | None = None
        self._queues: dict[str, AbstractQueue] = {}
        # Claims take messages on their own channels, several at once.
        self._getters: list[AbstractChannel] = []
        self._getter_queues: dict[tuple[int, str], AbstractQueue] = {}
        self._leases: dict[str, _Lease] = {}
        self._reserved: dict[str, int] = {}
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_gauge: dict[str, Any] = {}
        self._closing = False

    # -- lifecycle -----------------------------------------------------------------

    @translated
    async def connect(self) -> None:
        if self._conn is not None:
            return
        self._closing = False
        self._conn = await aio_pika.connect_robust(self.settings.broker_url)
        self._ch = await self._conn.channel(publisher_confirms=True)
        self._ch.close_callbacks.add(self._on_channel_closed)
        self._getters = [await self._new_getter(i) for i in range(GETTERS)]
        await self.streams.start(self._conn, self._ch)
        self._tasks = [asyncio.create_task(self._ticker())]

    async def aclose(self) -> None:
        self._closing = True
        self._dirty.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, *DRIVER_ERRORS):
                await asyncio.wait_for(task, _TICK_S * 4)
        self._tasks = []
        if self._conn is None:
            return
        self._leases.clear()
        with contextlib.suppress(*DRIVER_ERRORS, BackendError):
            await self._flush()
        with contextlib.suppress(*DRIVER_ERRORS):
            await self._conn.close()
        self._conn = self._ch = None

    def _on_channel_closed(self, *_: Any) -> None:
        self._queues.clear()

    def _on_getter_closed(self, index: int) -> Callable[..., None]:
        def closed(*_: Any) -> None:
            # The broker gave every unacked delivery of the channel back: its
            # leases are over (a later ack raises LeaseLost).
            for token, lease in list(self._leases.items()):
                if lease.getter == index:
                    del self._leases[token]
            for key in [k for k in self._getter_queues if k[0] == index]:
                del self._getter_queues[key]
            self._dirty.set()

        return closed

    async def _getter_queue(self, index: int, queue: str) -> AbstractQueue:
        """``queue``'s AMQP queue as seen by claim channel ``index``."""
        key = (index, queue)
        found = self._getter_queues.get(key)
        if found is None or self._getters[index].is_closed:
            await self._revive()
            await self._ready(queue)  # declared once, on the main channel
            getter = self._getters[index]
            found = await getter.get_queue(self.names.ready(queue), ensure=False)
            self._getter_queues[key] = found
        return found

    async def _new_getter(self, index: int) -> AbstractChannel:
        if self._conn is None:
            raise BackendError("the RabbitMQ backend is not connected: call connect()")
        getter = await self._conn.channel(publisher_confirms=False)
        getter.close_callbacks.add(self._on_getter_closed(index))
        return getter

    async def _revive(self) -> None:
        """Open anew the channels aio-pika could not reopen after a reconnect (it
        gives up on a channel whose reopening met the broker still starting)."""
        conn = self._conn
        if conn is None or conn.is_closed or conn.reconnecting:
            return
        if not getattr(conn, "connected", asyncio.Event()).is_set():
            return  # aio-pika is still reconnecting: it reopens the channels
        if self._ch is not None and self._ch.is_closed:
            self._ch = await conn.channel(publisher_confirms=True)
            self._ch.close_callbacks.add(self._on_channel_closed)
            self.streams.use_channel(self._ch)
            self._queues.clear()
        for i, getter in enumerate(self._getters):
            if getter.is_closed:
                self._getters[i] = await self._new_getter(i)
                for key in [k for k in self._getter_queues if k[0] == i]:
                    del self._getter_queues[key]

    def _channel(self) -> AbstractChannel:
        if self._ch is None:
            raise BackendError("the RabbitMQ backend is not connected: call connect()")
        return self._ch

    async def _ticker(self) -> None:
        """Ends this process's expired leases, flushes gauges and counters, and
        republishes the gauge while leases are held (so it does not go stale)."""
        last_beat = 0
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self._next_tick())
            try:
                await self._revive()
                await self._expire_local(grace_ms=LEASE_GRACE_MS)
                now = now_ms()
                beat = bool(self._leases) and now - last_beat >= GAUGE_BEAT_MS
                if self._dirty.is_set() or beat or self.streams.counts_due(now):
                    self._dirty.clear()
                    if await self._flush(beat=beat):
                        last_beat = now
            except _TICK_ERRORS as exc:
                log.warning("RabbitMQ bookkeeping failed, retrying: %s", exc)
                await asyncio.sleep(_TICK_S)
                self._dirty.set()

    def _next_tick(self) -> float:
        due = min((lease.expires for lease in self._leases.values()), default=None)
        if due is None:
            return _TICK_S
        due += LEASE_GRACE_MS
        return max(0.0, min(_TICK_S, (due - now_ms()) / 1000))

    async def _flush(self, *, beat: bool = True) -> bool:
        """Publish this process's lease gauge (when it changed, or with ``beat``)
        and the counters it added; whether the gauge went out. Changes made
        while a flush waits for the broker go out together in the next one."""
        gauge = self._gauge()
        shown = {k: v for k, v in gauge.items() if k != "at"}
        published = beat or shown != self._last_gauge
        if published:
            await self.streams.append(self.names.live, gauge)
            self._last_gauge = shown
        await self.streams.flush_counts()
        return published

    def _gauge(self) -> dict[str, Any]:
        in_flight: dict[str, int] = dict(self._reserved)
        oldest: dict[str, int] = {}
        leased: dict[str, list[dict[str, Any]]] = {}
        for lease in self._leases.values():
            msg = lease.delivery.message
            in_flight[msg.queue] = in_flight.get(msg.queue, 0) + 1
            enq = to_ms_dt(msg.enqueued_at)
            oldest[msg.queue] = min(oldest.get(msg.queue, enq), enq)
            shown = leased.setdefault(msg.queue, [])
            if len(shown) < GAUGE_SHOWN:
                small = len(msg.body) <= GAUGE_BODY_MAX
                shown.append(message_dict(msg, body=small))
        return {
            "t": "gauge",
            "i": self.instance,
            "at": now_ms(),
            "n": {q: n for q, n in in_flight.items() if n},
            "o": oldest,
            "l": leased,
        }

    def _count(self, queue: str, **cells: int) -> None:
        self.streams.count(queue, **cells)

    # -- queues --------------------------------------------------------------------

    async def _queue(self, name: str, arguments: dict[str, Any]) -> AbstractQueue:
        """The AMQP queue ``name``, declared once per channel."""
        queue = self._queues.get(name)
        if queue is None:
            queue = await self._channel().declare_queue(
                name, durable=True, arguments=arguments
            )
            self._queues[name] = queue
        return queue

    async def _ready(self, queue: str) -> AbstractQueue:
        return await self._queue(self.names.ready(queue), _QUORUM)

    async def _delay(self, queue: str, bucket: int) -> AbstractQueue:
        if bucket not in self.state.buckets.get(queue, ()):
            rec = {"t": "bucket", "q": queue, "b": bucket}
            await self.streams.append(self.names.meta, rec, applied=True)
        return await self._queue(
            self.names.delay(queue, bucket),
            {
                **_QUORUM,
                "x-message-ttl": bucket,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": self.names.ready(queue),
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
        )

    @translated
    async def get_policy(self, queue: str) -> QueuePolicy | None:
        policy = self.state.policies.get(queue)
        if policy is None:
            await self.streams.sync()
            policy = self.state.policies.get(queue)
        return policy

    async def _policy(self, queue: str) -> QueuePolicy:
        policy = await self.get_policy(queue)
        if policy is None:
            raise QueueNotFound(queue)
        return policy

    async def _publish(
        self, message: Message, *, attempts: int, history: list[HistoryEntry]
    ) -> None:
        """Publish ``message`` (confirmed) on its queue, or on the delay queue of
        its ``available_at`` when that is in the future."""
        bucket = delay_bucket(to_ms_dt(message.available_at) - now_ms())
        target = await (
            self._delay(message.queue, bucket) if bucket else self._ready(message.queue)
        )
        amqp = pack_message(message, attempts=attempts, history=history)
        await self._channel().default_exchange.publish(amqp, routing_key=target.name)

    async def _resolve(
        self, queue: str, policy: QueuePolicy, incoming: AbstractIncomingMessage
    ) -> Unpacked | None:
        """The message as counted so far: each broker redelivery since it was
        published is a lease that ended with its channel (an attempt). ``None``
        when that used up its attempts: it is a dead letter now."""
        got = unpack_message(queue, incoming)
        if not got.returns:
            return got
        now = now_ms()
        history = got.history + [lease_expired_entry(now, "")] * got.returns
        msg = replace(got.message, attempts=got.message.attempts + got.returns)
        if msg.attempts >= policy.max_attempts:
            await self._bury(incoming, msg, history, "lease_expired")
            return None
        return Unpacked(msg, history, 0)

    async def _bury(
        self,
        incoming: AbstractIncomingMessage,
        msg: Message,
        history: list[HistoryEntry],
        reason: str,
    ) -> None:
        """Record ``msg`` as a dead letter, then take it off its queue."""
        dl = DeadLetter(
            message=msg,
            queue=msg.queue,
            reason=reason,
            error=history[-1].error if history else None,
            history=history,
            attempts=msg.attempts,
            dead_at=from_ms(now_ms()),
        )
        await self.streams.append(self.names.meta, dead_record(dl), applied=True)
        await incoming.ack()

    def _held(self, delivery: Delivery) -> tuple[str, _Lease]:
        mid, token = parse_receipt(delivery.receipt)
        lease = self._leases.get(token)
        if lease is None or lease.delivery.id != mid:
            raise _lost(mid)
        return token, lease

    async def _finish(self, token: str, lease: _Lease) -> None:
        """Take the leased original off its queue (its successor is stored)."""
        self._leases.pop(token, None)
        self._dirty.set()
        try:
            await lease.incoming.ack()
        except DRIVER_ERRORS as exc:
            raise _lost(lease.delivery.id) from exc

    async def _expire_local(self, *, grace_ms: int = 0) -> None:
        """End this process's leases past their time (by ``grace_ms`` more): the
        message is published again with a ``lease_expired`` entry, or
        dead-lettered when that was its last attempt."""
        now = now_ms()
        for token, lease in list(self._leases.items()):
            if lease.expires + grace_ms > now or self._leases.get(token) is not lease:
                continue
            del self._leases[token]
            self._dirty.set()
            msg = lease.delivery.message
            history = [
                *lease.history,
                lease_expired_entry(now, lease.delivery.consumer),
            ]
            policy = self.state.policies.get(msg.queue)
            if policy is not None and msg.attempts >= policy.max_attempts:
                await self._bury(lease.incoming, msg, history, "lease_expired")
                continue
            visible = replace(msg, available_at=from_ms(now))
            await self._publish(visible, attempts=msg.attempts, history=history)
            await lease.incoming.ack()
