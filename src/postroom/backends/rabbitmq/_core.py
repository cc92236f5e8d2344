"""The RabbitMQ backend's core: connection, channels, queues, publishing.

See ``_backend`` for the design in short and ``docs/backends/rabbitmq.md``;
leases, claim lanes and the bookkeeping task are in ``_leasing``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import aio_pika
import aiormq.abc
from aio_pika.abc import AbstractChannel, AbstractQueue, AbstractRobustConnection

from ...model.errors import BackendError, QueueNotFound
from ...model.message import (
    DeadLetter,
    HistoryEntry,
    Message,
    QueuePolicy,
    from_ms,
    now_ms,
    to_ms_dt,
)
from .._common import lease_expired_entry
from ..base import Backend, Capabilities
from ._names import Names, delay_bucket, parse_url
from ._ordered import entry_record
from ._records import Unpacked, dead_record, pack_message
from ._state import State
from ._streams import Streams
from ._translate import DRIVER_ERRORS, translated

__all__ = ["Ack", "RabbitCore"]

_QUORUM = {"x-queue-type": "quorum"}

Ack = Callable[[], Awaitable[None]]


class RabbitCore(Backend):
    """Connection, lease bookkeeping and the queues of the RabbitMQ backend."""

    capabilities = Capabilities(
        native_wakeups=True,
        worker_registry=True,
        groups=True,
        priorities=True,
        rate_limits=True,
    )

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.settings = parse_url(url)
        self.names = Names(self.settings.prefix)
        self.where = url.split("@")[-1]
        self.instance = os.urandom(6).hex()
        self.state = State(me=self.instance)
        self.streams = Streams(self.names, self.state)
        self._conn: AbstractRobustConnection | None = None
        self._ch: AbstractChannel | None = None
        self._queues: dict[str, AbstractQueue] = {}

    # -- lifecycle -----------------------------------------------------------------

    @translated
    async def connect(self) -> None:
        if self._conn is not None:
            return
        self._conn = await aio_pika.connect_robust(self.settings.broker_url)
        self._ch = await self._conn.channel(publisher_confirms=True)
        self._ch.close_callbacks.add(self._on_channel_closed)
        await self.streams.start(self._conn, self._ch)

    async def aclose(self) -> None:
        if self._conn is None:
            return
        with contextlib.suppress(*DRIVER_ERRORS):
            await self._conn.close()
        self._conn = self._ch = None

    def _on_channel_closed(self, *_: Any) -> None:
        self._queues.clear()

    async def _revive(self) -> None:
        """Open anew the main channel if aio-pika could not reopen it after a
        reconnect (it gives up on a channel whose reopening met the broker
        still starting)."""
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

    def _channel(self) -> AbstractChannel:
        if self._ch is None:
            raise BackendError("the RabbitMQ backend is not connected: call connect()")
        return self._ch

    async def _open_channel(self) -> aiormq.abc.AbstractChannel:
        """A channel of the current connection that aio-pika does not reopen
        (a lane's messages end with it; the lane is opened anew on next use)."""
        transport = self._conn.transport if self._conn is not None else None
        if transport is None:
            raise BackendError(
                f"RabbitMQ at {self.where} is not connected (reconnecting): "
                "try again in a few seconds"
            )
        return await transport.connection.channel(publisher_confirms=False)

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
        its ``available_at`` when that is in the future; a grouped or
        prioritised one as a record of the meta stream (``_ordered``)."""
        if message.group is not None or message.priority:
            m = replace(message, attempts=attempts)
            rec = {"t": "os", "q": m.queue, "ms": [entry_record(m, history)]}
            await self.streams.append(self.names.meta, rec, applied=True)
            return
        bucket = delay_bucket(to_ms_dt(message.available_at) - now_ms())
        target = await (
            self._delay(message.queue, bucket) if bucket else self._ready(message.queue)
        )
        amqp = pack_message(message, attempts=attempts, history=history)
        await self._channel().default_exchange.publish(amqp, routing_key=target.name)

    async def _resolve(
        self, queue: str, policy: QueuePolicy, got: Unpacked, ack: Ack
    ) -> Unpacked | None:
        """The message as counted so far: each broker redelivery since it was
        published is a lease that ended with its channel (an attempt). ``None``
        when that used up its attempts: it is a dead letter now (``ack`` took
        it off its queue)."""
        if not got.returns:
            return got
        now = now_ms()
        history = got.history + [lease_expired_entry(now, "")] * got.returns
        msg = replace(got.message, attempts=got.message.attempts + got.returns)
        if msg.attempts >= policy.max_attempts:
            await self._bury(ack, msg, history, "lease_expired")
            return None
        return Unpacked(msg, history, 0)

    async def _bury(
        self, ack: Ack, msg: Message, history: list[HistoryEntry], reason: str
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
        await ack()
