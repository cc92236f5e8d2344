"""postroom's two streams: append a record, follow both, wait for a record to
be applied (see ``_state`` for what they hold)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractRobustConnection,
)

from ...model.errors import BackendError
from ._names import Names
from ._state import State

__all__ = ["Streams"]

log = logging.getLogger(__name__)

_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
# How far back a process reads the live stream when it starts: dedup windows
# longer than this are cut to it (docs/backends/rabbitmq.md).
LIVE_WINDOW = timedelta(hours=1)
_APPLY_TIMEOUT_S = 30.0
_PREFETCH = 2000


class Streams:
    """Append to and follow ``<prefix>.meta`` and ``<prefix>.live``."""

    def __init__(self, names: Names, state: State) -> None:
        self.names = names
        self.state = state
        self._offsets: dict[str, int] = {}
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._publish: AbstractChannel | None = None

    async def start(
        self, conn: AbstractRobustConnection, publish: AbstractChannel
    ) -> None:
        """Declare both streams, follow them from their start, catch up."""
        self._publish = publish
        await publish.declare_queue(
            self.names.meta, durable=True, arguments={"x-queue-type": "stream"}
        )
        await publish.declare_queue(
            self.names.live,
            durable=True,
            arguments={
                "x-queue-type": "stream",
                "x-max-age": "2h",
                "x-stream-max-segment-size-bytes": 4_000_000,
            },
        )
        tail = await conn.channel()
        await tail.set_qos(prefetch_count=_PREFETCH)
        since = datetime.now(UTC) - LIVE_WINDOW
        for name, offset in ((self.names.meta, "first"), (self.names.live, since)):
            queue = await tail.get_queue(name, ensure=False)
            await queue.consume(
                self._on_record(name), arguments={"x-stream-offset": offset}
            )
        await self.sync()

    def _on_record(self, stream: str) -> Any:
        async def on_record(incoming: AbstractIncomingMessage) -> None:
            offset = (incoming.headers or {}).get("x-stream-offset")
            try:
                if isinstance(offset, int):
                    if offset <= self._offsets.get(stream, -1):
                        return  # replayed after a reconnect: applied already
                    self._offsets[stream] = offset
                rec = json.loads(incoming.body)
                self.state.apply(rec)
                waiter = self._waiters.pop(str(rec.get("rid", "")), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            except Exception:  # a bad record must not stop the fold
                log.exception("skipped a record of %s", stream)
            finally:
                await incoming.ack()

        return on_record

    async def append(
        self, stream: str, rec: dict[str, Any], *, applied: bool = False
    ) -> None:
        """Publish ``rec`` (confirmed by the broker); with ``applied``, also wait
        until this process's state has applied it (and so every earlier one)."""
        if self._publish is None:
            raise BackendError("the RabbitMQ backend is not connected: connect()")
        waiter: asyncio.Future[None] | None = None
        if applied:
            rid = os.urandom(8).hex()
            rec = {**rec, "rid": rid}
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[rid] = waiter
        body = _ENCODE(rec).encode()
        await self._publish.default_exchange.publish(
            aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=stream,
        )
        if waiter is not None:
            try:
                await asyncio.wait_for(waiter, _APPLY_TIMEOUT_S)
            except TimeoutError as exc:
                raise BackendError(
                    f"RabbitMQ stream {stream} did not deliver a record back within "
                    f"{_APPLY_TIMEOUT_S:.0f} s: check the broker's health"
                ) from exc

    async def sync(self, *, meta: bool = True) -> None:
        """Wait until this process has applied every record written to the live
        stream (and with ``meta`` the meta stream) before this call."""
        streams = [self.names.live] + ([self.names.meta] if meta else [])
        await asyncio.gather(
            *(self.append(s, {"t": "mark"}, applied=True) for s in streams)
        )
