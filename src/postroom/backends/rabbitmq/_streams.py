"""postroom's streams: append a record, follow them, wait for a record to be
applied (see ``_state`` for what they hold)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import aiormq.abc
from aio_pika.abc import (
    AbstractChannel,
    AbstractRobustChannel,
    AbstractRobustConnection,
)

from ...model.errors import BackendError
from ...model.message import now_ms
from ._names import Names
from ._state import State

__all__ = ["Streams"]

log = logging.getLogger(__name__)

_ENCODE = json.JSONEncoder(separators=(",", ":")).encode
# How far back a process reads the dedup stream when it starts: dedup windows
# longer than this are cut to it (docs/backends/rabbitmq.md).
DEDUP_WINDOW = timedelta(hours=1)
# ... and the live stream (lease gauges, marks): a gauge older than
# GAUGE_STALE_MS (15 s) is not counted anyway.
LIVE_WINDOW = timedelta(seconds=30)
_APPLY_TIMEOUT_S = 30.0
_PREFETCH = 2000
# Counters added by this process travel with its next meta record, or in a
# record of their own once the oldest has waited this long.
COUNT_FLUSH_MS = 500


class Streams:
    """Append to and follow ``<prefix>.meta``, ``.dedup`` and ``.live``."""

    def __init__(self, names: Names, state: State) -> None:
        self.names = names
        self.state = state
        self._offsets: dict[str, int] = {}
        self._waiters: dict[str, asyncio.Future[None]] = {}
        self._publish: AbstractChannel | None = None
        self._tail: AbstractRobustChannel | None = None
        self._starts: dict[str, Any] = {}
        self._following: set[asyncio.Task[None]] = set()
        self._counts: dict[str, dict[str, int]] = {}
        self._counted_at = 0  # when the oldest pending count was added (ms)

    async def start(
        self, conn: AbstractRobustConnection, publish: AbstractChannel
    ) -> None:
        """Declare the streams, follow them from where they matter, catch up."""
        self._publish = publish
        await publish.declare_queue(
            self.names.meta, durable=True, arguments={"x-queue-type": "stream"}
        )
        for name, age in ((self.names.dedup, "2h"), (self.names.live, "10m")):
            await publish.declare_queue(
                name,
                durable=True,
                arguments={
                    "x-queue-type": "stream",
                    "x-max-age": age,
                    "x-stream-max-segment-size-bytes": 4_000_000,
                },
            )
        now = datetime.now(UTC)
        self.state.live_from = int((now - LIVE_WINDOW).timestamp() * 1000)
        self._starts = {
            self.names.meta: "first",
            self.names.dedup: now - DEDUP_WINDOW,
            self.names.live: now - LIVE_WINDOW,
        }
        self._tail = await conn.channel()
        # The broker cancels stream consumers when it stops; aio-pika would
        # restore them from their first offset. Following is resumed here
        # instead, after the last record applied, on every reopened channel.
        self._tail.reopen_callbacks.add(self._on_reopen)
        await self._follow()
        await self.sync()

    def use_channel(self, publish: AbstractChannel) -> None:
        """Publish on ``publish`` from now on (the old channel is gone)."""
        self._publish = publish

    def _on_reopen(self, *_: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._follow())
        self._following.add(task)
        task.add_done_callback(self._following.discard)

    async def _follow(self) -> None:
        """Consume the streams on the tail channel from where this process is."""
        if self._tail is None:
            return
        channel = await self._tail.get_underlay_channel()
        await channel.basic_qos(prefetch_count=_PREFETCH)
        for name, start in self._starts.items():
            last = self._offsets.get(name)
            await channel.basic_consume(
                name,
                self._on_record(name, channel),
                arguments={"x-stream-offset": start if last is None else last + 1},
            )

    def _on_record(self, stream: str, channel: aiormq.abc.AbstractChannel) -> Any:
        async def on_record(incoming: aiormq.abc.DeliveredMessage) -> None:
            headers = incoming.header.properties.headers or {}
            offset = headers.get("x-stream-offset")
            try:
                if isinstance(offset, int):
                    if offset <= self._offsets.get(stream, -1):
                        return  # delivered again: applied already
                    self._offsets[stream] = offset
                rec = json.loads(incoming.body)
                self.state.apply(rec)
                waiter = self._waiters.pop(str(rec.get("rid", "")), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            except Exception:  # a bad record must not stop the fold
                log.exception("skipped a record of %s", stream)
            finally:
                tag = getattr(incoming.delivery, "delivery_tag", None)
                if tag is not None and not channel.is_closed:
                    await channel.basic_ack(tag)

        return on_record

    def count(self, queue: str, **cells: int) -> None:
        """Add to this process's counters of ``queue``: they go out with its next
        meta record (``pc``), at the latest COUNT_FLUSH_MS later (one record per
        counted operation would double the cost of a send)."""
        if not self._counts:
            self._counted_at = now_ms()
        held = self._counts.setdefault(queue, {})
        for name, n in cells.items():
            held[name] = held.get(name, 0) + n

    def counts_due(self, now: int) -> bool:
        """Whether pending counters have waited COUNT_FLUSH_MS."""
        return bool(self._counts) and now - self._counted_at >= COUNT_FLUSH_MS

    async def flush_counts(self) -> None:
        """Publish the pending counters now (in a record of their own)."""
        if self._counts:
            await self.append(self.names.meta, {"t": "count"})

    async def append(
        self, stream: str, rec: dict[str, Any], *, applied: bool = False
    ) -> None:
        """Publish ``rec`` (confirmed by the broker); with ``applied``, also wait
        until this process's state has applied it (and so every earlier one).
        A meta record carries the pending counters."""
        if self._publish is None:
            raise BackendError("the RabbitMQ backend is not connected: connect()")
        counts: dict[str, dict[str, int]] = {}
        if stream == self.names.meta and self._counts:
            counts, self._counts = self._counts, {}
            rec = {**rec, "pc": counts}
        waiter: asyncio.Future[None] | None = None
        if applied:
            rid = os.urandom(8).hex()
            rec = {**rec, "rid": rid}
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[rid] = waiter
        body = _ENCODE(rec).encode()
        try:
            await self._publish.default_exchange.publish(
                aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=stream,
            )
        except BaseException:
            for queue, cells in counts.items():
                self.count(queue, **cells)  # not confirmed: sent again later
            raise
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
