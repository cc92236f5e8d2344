"""What every process knows from postroom's streams: a pure fold of records.

``<prefix>.meta`` (kept for ever, read from its start) holds queue policies,
subscriptions, topic and lifetime counters, handler durations, delay buckets in
use and dead letters. ``<prefix>.dedup`` (read an hour back) holds dedup keys,
``<prefix>.live`` (read 30 s back) each process's lease gauges, the worker
registry's heartbeats and rate-limit permits (``_rate``). Every process
applies each record in stream order, so every process reaches the same state; a
decision that must be the same everywhere (which of two sends with one dedup key
won, whether a queue existed) is read from the state after the deciding record
was applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ...model.message import DeadLetter, Message, QueuePolicy, Subscription
from ...model.stats import COUNTERS
from ._ordered import ORDER_HANDLERS, Pending
from ._rate import Rate, fold_permit
from ._records import dead_from_record, message_from_dict

__all__ = ["GAUGE_STALE_MS", "State"]

# A process's gauge is trusted this long after its last record (it republishes
# it every GAUGE_BEAT_MS while it holds leases); a killed process stops counting.
GAUGE_BEAT_MS = 5_000
GAUGE_STALE_MS = 3 * GAUGE_BEAT_MS


@dataclass(slots=True)
class _Gauge:
    at: int
    in_flight: dict[str, int]
    oldest: dict[str, int]
    leased: dict[str, list[dict[str, Any]]]
    pushed: dict[str, int]


@dataclass(slots=True)
class State:
    """The folded state of the streams (see the module docstring)."""

    policies: dict[str, QueuePolicy] = field(default_factory=dict)
    subscriptions: dict[tuple[str, str], Subscription] = field(default_factory=dict)
    topics: dict[str, list[int]] = field(default_factory=dict)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    durations: dict[str, dict[str, int]] = field(default_factory=dict)
    buckets: dict[str, set[int]] = field(default_factory=dict)
    dead: dict[str, dict[str, DeadLetter]] = field(default_factory=dict)
    dedup: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)
    gauges: dict[str, _Gauge] = field(default_factory=dict)
    workers: dict[str, tuple[str, int]] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    rates: dict[str, Rate] = field(default_factory=dict)
    grants: dict[str, tuple[int, int]] = field(default_factory=dict)
    ordered: dict[str, Pending] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)  # of own order records
    on_order: Callable[[str], None] | None = None  # an order record was applied
    me: str = ""  # this process's instance id (its own records)
    live_from: int = 0  # when the live stream is read from (ms)

    def apply(self, rec: dict[str, Any]) -> None:
        """Apply one record (unknown kinds are ignored: a newer writer's)."""
        kind = str(rec.get("t"))
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, rec)
        elif kind in ORDER_HANDLERS:
            ORDER_HANDLERS[kind](self, rec)
            pending = self.ordered.get(rec["q"])
            if pending is not None:
                pending.version += 1
            if self.on_order is not None:
                self.on_order(rec["q"])
        counts = rec.get("pc")  # the writer's counters, carried along
        if counts:
            _count(self, {"c": counts})

    def bury(self, dl: DeadLetter) -> None:
        """Add a dead letter (one that died again moves to the end)."""
        held = self.dead.setdefault(dl.queue, {})
        held.pop(dl.id, None)
        held[dl.id] = dl
        _add(self, dl.queue, "dead_lettered", 1)

    def in_flight(self, queue: str, now: int, *, besides: str) -> tuple[int, int]:
        """Leases of ``queue`` held by live processes other than ``besides``,
        and the oldest leased message's enqueue time (ms, 0 if none)."""
        total, oldest = 0, 0
        for g in _live(self, now, besides):
            total += g.in_flight.get(queue, 0)
            o = g.oldest.get(queue, 0)
            if o and (not oldest or o < oldest):
                oldest = o
        return total, oldest

    def pushed(self, queue: str, now: int, *, besides: str) -> int:
        """Messages of ``queue`` pushed to the consumers of live processes other
        than ``besides`` and not claimed yet (still ready)."""
        return sum(g.pushed.get(queue, 0) for g in _live(self, now, besides))

    def leased(self, queue: str, now: int, *, besides: str) -> list[Message]:
        """Messages of ``queue`` that live processes other than ``besides``
        show in their gauges (body empty when it was too big to show)."""
        return [
            message_from_dict(m, queue)
            for g in _live(self, now, besides)
            for m in g.leased.get(queue, [])
        ]

    def live_workers(self, now: int) -> list[str]:
        """The worker records not expired at ``now`` (the expired are dropped)."""
        for wid in [w for w, (_, until) in self.workers.items() if until <= now]:
            del self.workers[wid]
        return [record for record, _ in self.workers.values()]


def _live(s: State, now: int, besides: str) -> list[_Gauge]:
    return [
        g
        for iid, g in s.gauges.items()
        if iid != besides and g.at >= now - GAUGE_STALE_MS
    ]


def _policy(s: State, rec: dict[str, Any]) -> None:
    queue = rec["q"]
    if rec.get("replace") or queue not in s.policies:
        s.policies[queue] = QueuePolicy.from_dict(rec["p"])


def _drop(s: State, rec: dict[str, Any]) -> None:
    queue = rec["q"]
    tables = (s.policies, s.counters, s.buckets, s.dead, s.durations, s.ordered)
    for table in tables:
        table.pop(queue, None)
    # Dedup records live in the other stream: the drop's time orders them.
    s.dropped[queue] = max(s.dropped.get(queue, 0), int(rec.get("at", 0)))
    for key in [k for k in s.dedup if k[0] == queue]:
        del s.dedup[key]


def _sub(s: State, rec: dict[str, Any]) -> None:
    sub = Subscription.from_dict(rec["s"])
    s.subscriptions.setdefault((sub.topic, sub.name), sub)
    s.topics.setdefault(sub.topic, [0, 0])


def _unsub(s: State, rec: dict[str, Any]) -> None:
    s.subscriptions.pop((rec["topic"], rec["name"]), None)


def _publish(s: State, rec: dict[str, Any]) -> None:
    counts = s.topics.setdefault(rec["topic"], [0, 0])
    counts[0] += 1
    if not rec["copies"]:
        counts[1] += 1


def _add(s: State, queue: str, name: str, n: int) -> None:
    held = s.counters.setdefault(queue, dict.fromkeys(COUNTERS, 0))
    held[name] = held.get(name, 0) + n


def _count(s: State, rec: dict[str, Any]) -> None:
    for queue, cells in (rec.get("c") or {}).items():
        for name, n in cells.items():
            _add(s, queue, name, int(n))


def _durations(s: State, rec: dict[str, Any]) -> None:
    held = s.durations.setdefault(rec["q"], {})
    for name, n in rec["c"].items():
        held[name] = held.get(name, 0) + int(n)


def _bucket(s: State, rec: dict[str, Any]) -> None:
    s.buckets.setdefault(rec["q"], set()).add(int(rec["b"]))


def _dead(s: State, rec: dict[str, Any]) -> None:
    s.bury(dead_from_record(rec))


def _undead(s: State, rec: dict[str, Any]) -> None:
    held = s.dead.get(rec["q"], {})
    for mid in rec["ids"]:
        held.pop(mid, None)
    if rec.get("redriven"):
        _add(s, rec["q"], "redriven", len(rec["ids"]))


def _dedup(s: State, rec: dict[str, Any]) -> None:
    key = (rec["q"], rec["k"])
    known = s.dedup.get(key)
    at = int(rec["at"])
    if at < s.dropped.get(rec["q"], 0):
        return  # sent before its queue was deleted
    if known is None or known[1] <= at:
        s.dedup[key] = (rec["id"], int(rec["until"]))
    if len(s.dedup) > 4096 and at % 64 == 0:  # forget long-gone keys now and then
        for k in [k for k, v in s.dedup.items() if v[1] < at]:
            del s.dedup[k]


def _gauge(s: State, rec: dict[str, Any]) -> None:
    s.gauges[rec["i"]] = _Gauge(
        int(rec["at"]),
        rec["n"],
        rec.get("o") or {},
        rec.get("l") or {},
        rec.get("b") or {},
    )


def _worker(s: State, rec: dict[str, Any]) -> None:
    s.workers[rec["id"]] = (rec["r"], int(rec["x"]))


def _unworker(s: State, rec: dict[str, Any]) -> None:
    s.workers.pop(rec["id"], None)


def _permit(s: State, rec: dict[str, Any]) -> None:
    fold_permit(s.rates, s.grants, s.me, s.live_from, rec)


_HANDLERS: dict[str, Callable[[State, dict[str, Any]], None]] = {
    "policy": _policy,
    "drop": _drop,
    "sub": _sub,
    "unsub": _unsub,
    "pub": _publish,
    "count": _count,
    "dur": _durations,
    "bucket": _bucket,
    "dead": _dead,
    "undead": _undead,
    "dedup": _dedup,
    "gauge": _gauge,
    "worker": _worker,
    "unworker": _unworker,
    "permit": _permit,
}
