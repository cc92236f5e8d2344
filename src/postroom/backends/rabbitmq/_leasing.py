"""The RabbitMQ backend's leases: claim lanes, lease timers, the lease gauge.

A lease is a message taken on a claim lane (``_lanes``) and not yet acked. This
process ends it at the visibility timeout itself (the bookkeeping task), the
broker when the process dies or hangs (the channel closes). The bookkeeping task
also publishes the process's lease gauge and counters, and stops the consumers
nobody has used for a while, giving back the messages pushed to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass, replace
from typing import Any

from ...model.errors import BackendError, LeaseLost
from ...model.message import Delivery, HistoryEntry, Message, from_ms, now_ms, to_ms_dt
from .._common import lease_expired_entry, parse_receipt
from ._core import RabbitCore
from ._lanes import Lane, Taken
from ._rate import estimate, permit_record
from ._records import Unpacked, message_dict, unpack_message
from ._state import GAUGE_BEAT_MS
from ._translate import DRIVER_ERRORS, translated

__all__ = ["LeaseCore"]

log = logging.getLogger(__name__)

_TICK_S = 0.5
# The timer ends a lease this long after it ran out, so that an expired lease
# nobody claimed again can still be acked or extended (as on every backend);
# claim, stats and dead_letters end it at once.
LEASE_GRACE_MS = 1_000
# A consumer that no claim or wait used for this long is stopped, and the
# messages the broker pushed to it since are given back to the queue.
LANE_IDLE_MS = 1_000
# Gauges go out at most this often (changes meanwhile go out together), unless
# they show new leases.
GAUGE_EVERY_MS = 100
# A gauge shows this many leased (or pushed, not yet claimed) messages per queue
# to other processes' peek, with their body when it is at most GAUGE_BODY_MAX.
GAUGE_SHOWN = 20
GAUGE_BODY_MAX = 1024
_TICK_ERRORS: tuple[type[BaseException], ...] = (*DRIVER_ERRORS, BackendError)


def _lost(mid: str) -> LeaseLost:
    return LeaseLost(
        f"lease of message {mid} was lost (it expired and the message was delivered "
        "again, it was already acked, or the connection that held it closed): "
        "raise the queue's visibility_timeout or call extend() during long work"
    )


def unpack(queue: str, taken: Taken) -> Unpacked:
    """The postroom message a lane took."""
    return unpack_message(queue, taken.message_id, taken.headers, taken.body)


@dataclass(slots=True)
class _Lease:
    taken: Taken
    delivery: Delivery
    history: list[HistoryEntry]
    expires: int


class LeaseCore(RabbitCore):
    """Leases, claim lanes and the bookkeeping task of the RabbitMQ backend."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._lanes: dict[str, Lane] = {}
        self._lane_lock = asyncio.Lock()
        # Held while pushed messages are given back and while stats counts
        # (a message between its buffer and its copy would be counted nowhere).
        self._moving = asyncio.Lock()
        self._leases: dict[str, _Lease] = {}
        self._dirty = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._last_gauge: dict[str, Any] = {}
        self._gauge_at = 0
        # New leases go out at once (another process's stats and peek show
        # them); other changes (acks, pushes) at most every GAUGE_EVERY_MS.
        self._new_leases = False
        self._closing = False

    async def connect(self) -> None:
        await super().connect()
        if not self._tasks:
            self._closing = False
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
        with contextlib.suppress(*DRIVER_ERRORS, BackendError):
            for queue, lane in list(self._lanes.items()):
                await self._give_back(queue, await lane.stop())
                await lane.flush()  # acks waiting to go out in a multiple ack
        self._lanes.clear()
        self._leases.clear()
        with contextlib.suppress(*DRIVER_ERRORS, BackendError):
            await self._flush()
        await super().aclose()

    # -- lanes ---------------------------------------------------------------------

    async def _lane(self, queue: str) -> Lane:
        """The lane this process claims ``queue``'s messages on."""
        lane = self._lanes.get(queue)
        if lane is not None and not lane.closed:
            return lane
        async with self._lane_lock:
            lane = self._lanes.get(queue)
            if lane is None or lane.closed:
                await self._revive()
                name = (await self._ready(queue)).name  # declared on the main channel
                lane = Lane(await self._open_channel(), name, self._lane_changed)
                self._lanes[queue] = lane
        return lane

    def _lane_changed(self, lane: Lane) -> None:
        if lane.closed:
            # The broker gave every unacked message of the channel back: its
            # leases are over (a later ack raises LeaseLost).
            for token, lease in list(self._leases.items()):
                if lease.taken.lane is lane:
                    del self._leases[token]
        self._dirty.set()

    async def _give_back(self, queue: str, taken: list[Taken]) -> None:
        """Put messages pushed to this process that nobody claimed back on
        ``queue``, not counted as an attempt: a copy, then the ack (a nack would
        count one)."""
        policy = self.state.policies.get(queue)
        kept: list[tuple[Taken, Unpacked]] = []
        for t in taken:
            got = unpack(queue, t)
            if policy is not None:
                resolved = await self._resolve(queue, policy, got, t.ack)
                if resolved is not None:
                    kept.append((t, resolved))
        await asyncio.gather(
            *(
                self._publish(g.message, attempts=g.message.attempts, history=g.history)
                for _, g in kept
            )
        )
        for t, _ in kept:
            await t.ack()

    async def _stop_idle_lanes(self) -> None:
        now = now_ms()
        for queue, lane in list(self._lanes.items()):
            idle = not lane.waiters and now - lane.used_at >= LANE_IDLE_MS
            if (lane.consuming or lane.buffer) and idle:
                async with self._moving:
                    await self._give_back(queue, await lane.stop())

    def _likely_permits(self, queue: str, limit: float, wanted: int) -> int:
        """At most ``wanted``: the permits this process's fold says a claim of
        ``queue`` would get now (none: the claim asks for none and returns)."""
        now = now_ms()
        likely, due = estimate(self.state.rates.get(queue), limit, now, wanted)
        if not likely:
            self.permit_due_ms[queue] = due
        return likely

    async def _permits(self, queue: str, limit: float, wanted: int) -> int:
        """Ask for ``wanted`` permits of ``queue`` in the live stream; how many
        the fold granted (``_rate``). Sets when the next one is due."""
        rec = permit_record(queue, wanted, limit, now_ms(), self.instance)
        await self.streams.append(self.names.live, rec, applied=True)
        granted, due = self.state.grants.pop(rec["g"], (0, now_ms()))
        self.permit_due_ms[queue] = due
        return granted

    def _buffered(self, queue: str) -> list[Taken]:
        lane = self._lanes.get(queue)
        return list(lane.buffer) if lane is not None else []

    # -- leases --------------------------------------------------------------------

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
        if lease.taken.lane.closed:
            raise _lost(lease.delivery.id)
        try:
            await lease.taken.ack()
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
                await self._bury(lease.taken.ack, msg, history, "lease_expired")
                continue
            visible = replace(msg, available_at=from_ms(now))
            await self._publish(visible, attempts=msg.attempts, history=history)
            await lease.taken.ack()

    def _until_expiry(self, queue: str) -> float:
        """Seconds until a lease this process holds on ``queue`` runs out."""
        due = min(
            (le.expires for le in self._leases.values() if le.delivery.queue == queue),
            default=None,
        )
        return math.inf if due is None else max(0.0, (due - now_ms()) / 1000)

    # -- bookkeeping ---------------------------------------------------------------

    async def _ticker(self) -> None:
        """Ends this process's expired leases, stops idle consumers, flushes
        gauges and counters, and republishes the gauge while leases are held
        (so that it does not go stale)."""
        last_beat = 0
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), self._next_tick())
            try:
                await self._revive()
                await self._expire_local(grace_ms=LEASE_GRACE_MS)
                await self._stop_idle_lanes()
                now = now_ms()
                beat = bool(self._leases) and now - last_beat >= GAUGE_BEAT_MS
                if self._dirty.is_set() or beat or self.streams.counts_due(now):
                    pause = GAUGE_EVERY_MS - (now - self._gauge_at)
                    if pause > 0 and not self._closing and not self._new_leases:
                        await asyncio.sleep(pause / 1000)  # changes go out together
                    self._dirty.clear()
                    if await self._flush(beat=beat):
                        last_beat = now_ms()
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
            self._gauge_at, self._new_leases = now_ms(), False
            await self.streams.append(self.names.live, gauge)
            self._last_gauge = shown
        if self._closing or self.streams.counts_due(now_ms()):
            await self.streams.flush_counts()
        return published

    def _gauge(self) -> dict[str, Any]:
        """Leases per queue (and the oldest leased message's enqueue time),
        messages pushed and not yet claimed per queue, and some of both."""
        in_flight: dict[str, int] = {}
        oldest: dict[str, int] = {}
        shown: dict[str, list[Message]] = {}
        for lease in self._leases.values():
            msg = lease.delivery.message
            in_flight[msg.queue] = in_flight.get(msg.queue, 0) + 1
            enq = to_ms_dt(msg.enqueued_at)
            oldest[msg.queue] = min(oldest.get(msg.queue, enq), enq)
            shown.setdefault(msg.queue, []).append(msg)
        pushed = {q: len(lane.buffer) for q, lane in self._lanes.items() if lane.buffer}
        for queue in pushed:
            held = shown.setdefault(queue, [])
            for t in self._buffered(queue)[: max(0, GAUGE_SHOWN - len(held))]:
                held.append(unpack(queue, t).message)
        listed = {
            q: [
                message_dict(m, body=len(m.body) <= GAUGE_BODY_MAX)
                for m in msgs[:GAUGE_SHOWN]
            ]
            for q, msgs in shown.items()
        }
        return {
            "t": "gauge",
            "i": self.instance,
            "at": now_ms(),
            "n": in_flight,
            "o": oldest,
            "l": listed,
            "b": pushed,
        }

    @translated
    async def _prepare_wait(self, queue: str) -> Lane:
        """The lane of ``queue``, consuming (the broker pushes messages to it)."""
        lane = await self._lane(queue)
        lane.used_at = now_ms()
        if not lane.consuming:
            await lane.consume(lane.demand)
        return lane
