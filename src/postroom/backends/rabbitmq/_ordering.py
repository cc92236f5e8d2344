"""The RabbitMQ backend's grouped and prioritised messages: sends, claims and
settlements as records of the meta stream (the fold is in ``_ordered``)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from ...model.errors import BackendError
from ...model.message import Delivery, HistoryEntry, Message, from_ms, now_ms, to_ms_dt
from .._common import make_receipt, new_token, parse_receipt
from ._lanes import Lane, Taken
from ._leasing import LeaseCore, _lost, unpack
from ._ordered import Entry, entry_record, next_due
from ._translate import DRIVER_ERRORS

__all__ = ["OrderCore", "is_ordered"]


def _enqueued(lane: Lane, taken: Taken) -> datetime:
    return unpack(lane.name, taken).message.enqueued_at


def is_ordered(m: Message) -> bool:
    """Whether ``m`` goes through the meta stream (a group or a priority)."""
    return m.group is not None or m.priority != 0


class OrderCore(LeaseCore):
    """Grouped and prioritised messages (mixed into :class:`RabbitBackend`)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._oleases: dict[str, Delivery] = {}  # lease token -> delivery
        self.state.on_order = self._order_changed

    async def aclose(self) -> None:
        """End this process's leases of grouped and prioritised messages now (as
        the broker ends its AMQP leases when the connection closes): the next
        claim counts the attempt and takes the message again."""
        held, self._oleases = list(self._oleases.values()), {}
        if held and self._conn is not None:
            with contextlib.suppress(*DRIVER_ERRORS, BackendError):
                await self._settle_ordered("ox", held, x=now_ms())
        self._oleases = {}
        await super().aclose()

    def _order_changed(self, queue: str) -> None:
        lane = self._lanes.get(queue)
        if lane is not None:
            lane.arrived.set()  # a waiter looks again

    async def _order_record(self, rec: dict[str, Any]) -> Any:
        """Append ``rec`` to meta; its result once this process applied it."""
        rec = {**rec, "i": self.instance, "g": new_token()}
        await self.streams.append(self.names.meta, rec, applied=True)
        return self.state.results.pop(rec["g"], None)

    async def _send_ordered(
        self, queue: str, messages: Sequence[Message], history: list[HistoryEntry]
    ) -> None:
        """Store ``messages`` in one ``os`` record (applied when this returns)."""
        ms = [entry_record(m, history) for m in messages]
        await self.streams.append(
            self.names.meta, {"t": "os", "q": queue, "ms": ms}, applied=True
        )

    def _ordered_ready(self, queue: str) -> bool:
        """Whether a claim of ``queue`` now would take a grouped or prioritised
        message, as far as this process folded the stream."""
        pending = self.state.ordered.get(queue)
        return pending is not None and pending.claimable(now_ms())

    def _ordered_wait(self, queue: str) -> float:
        """Seconds until a grouped or prioritised message of ``queue`` that waits
        for its time or its lease's end may be claimed."""
        due = next_due(self.state.ordered.get(queue), now_ms())
        return math.inf if due is None else max(0.0, (due - now_ms()) / 1000)

    async def _claim_ordered(
        self, queue: str, wanted: int, lease_ms: int, consumer: str
    ) -> list[Delivery]:
        rec = {"t": "oc", "q": queue, "n": wanted, "x": lease_ms, "c": consumer}
        rec["at"] = now_ms()
        ids: list[str] = await self._order_record(rec) or []
        pending = self.state.ordered.get(queue)
        out: list[Delivery] = []
        for mid in ids:
            e = pending.entries.get(mid) if pending is not None else None
            if e is None or not e.token:
                continue  # a later record changed it already
            receipt = make_receipt(mid, e.token)
            d = Delivery(e.message, receipt, from_ms(e.expires), consumer)
            self._oleases[e.token] = d
            out.append(d)
        return out

    async def _by_send_order(
        self, lane: Lane, firsts: list[Delivery]
    ) -> tuple[list[Delivery], list[Taken]]:
        """Priority 0 keeps send order across the two kinds of message: when
        grouped ones (``firsts``, highest priority first) fill a claim, its
        priority-0 ones are weighed against as many ungrouped messages (pushed to
        this process, or by ``basic.get`` without a consumer) by enqueue time.
        The claim keeps the older; the others go back (a release record, the
        lane's buffer). Returns the grouped and the ungrouped messages kept."""
        low = [d for d in firsts if not d.message.priority]
        taken = lane.take(len(low))
        if not taken and not lane.consuming:
            taken = [t for t in [await lane.get()] if t is not None]
        if not taken:
            return firsts, []
        ranked = sorted(
            [(to_ms_dt(d.message.enqueued_at), 0, i) for i, d in enumerate(low)]
            + [(to_ms_dt(_enqueued(lane, t)), 1, i) for i, t in enumerate(taken)]
        )[: len(low)]
        kept = {(kind, i) for _, kind, i in ranked}
        back = [d for i, d in enumerate(low) if (0, i) not in kept]
        if back:
            await self._settle_ordered("ol", back)
        lane.put_back([t for i, t in enumerate(taken) if (1, i) not in kept])
        return (
            [d for d in firsts if d not in back],
            [t for i, t in enumerate(taken) if (1, i) in kept],
        )

    def _split(
        self, deliveries: Sequence[Delivery]
    ) -> tuple[list[Delivery], list[Delivery]]:
        """Deliveries of grouped or prioritised messages, and the others."""
        mine: list[Delivery] = []
        others: list[Delivery] = []
        for d in deliveries:
            token = parse_receipt(d.receipt)[1]
            (mine if token in self._oleases else others).append(d)
        return mine, others

    async def _settle_ordered(
        self, kind: str, deliveries: Sequence[Delivery], **fields: Any
    ) -> list[Delivery]:
        """One record per queue changing ``deliveries``; the lost ones."""
        by_queue: dict[str, list[Delivery]] = {}
        for d in deliveries:
            by_queue.setdefault(d.queue, []).append(d)
        lost: list[Delivery] = []
        for queue, held in by_queue.items():
            ids = [list(parse_receipt(d.receipt)) for d in held]
            rec = {"t": kind, "q": queue, "ids": ids, **fields}
            gone = set(await self._order_record(rec) or [])
            for d in held:
                self._oleases.pop(parse_receipt(d.receipt)[1], None)
            lost += [d for d in held if d.id in gone]
        if kind == "ox":
            for d in deliveries:
                if d not in lost:
                    token = parse_receipt(d.receipt)[1]
                    kept = replace(d, lease_expires_at=from_ms(int(fields["x"])))
                    self._oleases[token] = kept
        return lost

    async def _retry_ordered(
        self, delivery: Delivery, delay_ms: int, entry: HistoryEntry
    ) -> None:
        y, at = entry.to_dict(), now_ms() + delay_ms
        if await self._settle_ordered("or", [delivery], a=at, y=y):
            raise _lost(delivery.id)
        self.streams.count(delivery.queue, retried=1)

    async def _bury_ordered(
        self, delivery: Delivery, reason: str, entry: HistoryEntry
    ) -> None:
        fields = {"reason": reason, "y": entry.to_dict(), "at": now_ms()}
        if await self._settle_ordered("od", [delivery], **fields):
            raise _lost(delivery.id)

    async def _extend_ordered(self, delivery: Delivery, lease_ms: int) -> Delivery:
        expires = now_ms() + lease_ms
        if await self._settle_ordered("ox", [delivery], x=expires):
            raise _lost(delivery.id)
        return replace(delivery, lease_expires_at=from_ms(expires))

    def _ordered_depths(self, queue: str, now: int) -> tuple[int, int, int, int]:
        """Grouped and prioritised messages of ``queue``: ready, delayed, leased,
        and the oldest leased one's enqueue time (ms, 0 if none)."""
        ready = delayed = leased = oldest = 0
        for e in self._ordered_entries(queue):
            if e.token and e.expires > now:
                leased += 1
                enq = to_ms_dt(e.message.enqueued_at)
                oldest = min(oldest, enq) if oldest else enq
            elif to_ms_dt(e.message.available_at) > now:
                delayed += 1
            else:
                ready += 1
        return ready, delayed, leased, oldest

    def _ordered_messages(self, queue: str) -> list[Message]:
        """Every grouped or prioritised message of ``queue``, in any state."""
        return [e.message for e in self._ordered_entries(queue)]

    def _ordered_entries(self, queue: str) -> list[Entry]:
        pending = self.state.ordered.get(queue)
        return list(pending.entries.values()) if pending is not None else []

    async def _purge_ordered(self, queue: str) -> int:
        if not self._ordered_entries(queue):
            return 0
        count: int = await self._order_record({"t": "op", "q": queue}) or 0
        return count
