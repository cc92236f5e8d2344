"""Grouped and prioritised messages: a replicated log in the meta stream
(docs/backends/rabbitmq.md, "Groups and priorities").

A message sent with a ``group`` or a priority above 0 is not published to its
AMQP queue: its send is a record of the meta stream (``os``), and so is every
change of its state: a claim (``oc``), an ack (``oa``), a retry (``or``), a dead
letter (``od``), a release (``ol``), an extension (``ox``), a purge (``op``).
Every process folds them in stream order, so every process knows every such
message's state. A claim record says who claims how many at what time; the fold
picks the messages (:meth:`Pending.pick`, the rules of :mod:`postroom.model.order`) and
gives them lease tokens derived from the record, the same in every process, so
two processes never lease one message. A lease that ran out is ended by the next
claim record after its end (dead-lettered when that was its last attempt). A
change names the lease token it was made with: a holder whose lease was taken
over changes nothing, and learns it (``LeaseLost``) from its record's result.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ...model.message import DeadLetter, HistoryEntry, Message, from_ms, to_ms_dt
from .._common import lease_expired_entry
from ._records import message_dict, message_from_dict

if TYPE_CHECKING:
    from ._state import State

__all__ = ["ORDER_HANDLERS", "Entry", "Pending", "entry_record", "next_due"]


@dataclass(slots=True, eq=False)
class Entry:
    """A grouped or prioritised message as folded: ``message.attempts`` counts
    its deliveries so far; ``token`` is its lease's ("" when not leased)."""

    message: Message
    history: list[HistoryEntry] = field(default_factory=list)
    token: str = ""
    expires: int = 0
    consumer: str = ""
    seq: int = 0  # its place in send order
    due: int = 0  # its available_at (ms)

    def free_at(self) -> int:
        """When (ms) a claim may take it, if it heads its group: when it is due
        and not leased (or its lease ran out)."""
        return max(self.due, self.expires) if self.token else self.due


@dataclass(slots=True)
class Pending:
    """A queue's grouped and prioritised messages: all in send order, the
    ungrouped ones by priority, each group's in send order, the leased ones."""

    entries: dict[str, Entry] = field(default_factory=dict)
    loose: dict[int, dict[str, Entry]] = field(default_factory=dict)
    groups: dict[str, deque[Entry]] = field(default_factory=dict)
    leased: dict[str, Entry] = field(default_factory=dict)
    seq: int = 0
    version: int = 0  # raised by every record applied to the queue
    _earliest: tuple[int, int | None] = (-1, None)

    def add(self, e: Entry) -> None:
        """Append ``e`` (a message already held is kept as it is)."""
        mid = e.message.id
        if mid in self.entries:
            return
        self.seq += 1
        e.seq, e.due = self.seq, to_ms_dt(e.message.available_at)
        self.entries[mid] = e
        if e.message.group is None:
            self.loose.setdefault(e.message.priority, {})[mid] = e
        else:
            self.groups.setdefault(e.message.group, deque()).append(e)

    def remove(self, e: Entry) -> None:
        """Take ``e`` out (the next of its group becomes the head)."""
        mid, group = e.message.id, e.message.group
        self.entries.pop(mid, None)
        self.leased.pop(mid, None)
        if group is None:
            self.loose.get(e.message.priority, {}).pop(mid, None)
            return
        held = self.groups.get(group)
        if held and held[0] is e:
            held.popleft()  # the head, as a rule
        elif held is not None and e in held:
            held.remove(e)
        if held is not None and not held:
            del self.groups[group]

    def lease(self, e: Entry, token: str, expires: int, consumer: str) -> None:
        """Lease ``e`` (a head) with ``token`` until ``expires``."""
        e.token, e.expires, e.consumer = token, expires, consumer
        self.leased[e.message.id] = e

    def unlease(self, e: Entry) -> None:
        """End ``e``'s lease."""
        e.token = ""
        self.leased.pop(e.message.id, None)

    def heads(self) -> Iterator[Entry]:
        """The first of each group, then every ungrouped message, highest
        priority first, each priority in send order."""
        yield from (g[0] for g in self.groups.values())
        for priority in sorted(self.loose, reverse=True):
            yield from self.loose[priority].values()

    def claimable(self, now: int) -> bool:
        """Whether a claim at ``now`` would take one: the first free head found
        answers; else the pass finds when the first becomes free (kept until a
        record changes the queue: heads only become free as time passes)."""
        if self._earliest[0] == self.version:
            first = self._earliest[1]
            return first is not None and first <= now
        earliest: int | None = None
        for e in self.heads():
            at = e.free_at()
            if at <= now:
                return True
            earliest = at if earliest is None else min(earliest, at)
        self._earliest = (self.version, earliest)
        return False

    def next_due(self, now: int) -> int | None:
        """When (ms) a claim may next take one (``None``: no message)."""
        if self.claimable(now):
            return now
        return self._earliest[1]

    def pick(self, now: int, wanted: int) -> list[Entry]:
        """The entries a claim of ``wanted`` at ``now`` takes: free heads,
        highest priority first, then send order."""
        free = [g[0] for g in self.groups.values() if g[0].free_at() <= now]
        for entries in self.loose.values():
            taken = 0
            for e in entries.values():
                if taken >= wanted:
                    break
                if e.free_at() <= now:
                    free.append(e)
                    taken += 1
        free.sort(key=lambda e: (-e.message.priority, e.seq))
        return free[:wanted]


def entry_record(message: Message, history: list[HistoryEntry]) -> dict[str, Any]:
    """A message of an ``os`` record (group and priority in ``message_dict``)."""
    return {**message_dict(message), "y": [h.to_dict() for h in history]}


def next_due(pending: Pending | None, now: int) -> int | None:
    """When (ms) a claim may next take one of ``pending``."""
    return pending.next_due(now) if pending is not None else None


def _mine(s: State, rec: dict[str, Any], result: Any) -> None:
    if rec.get("i") == s.me:
        s.results[str(rec["g"])] = result


def _send(s: State, rec: dict[str, Any]) -> None:
    pending = s.ordered.setdefault(rec["q"], Pending())
    for m in rec["ms"]:  # one held already: a send retried after its record went out
        history = [HistoryEntry.from_dict(h) for h in m.get("y") or []]
        pending.add(Entry(message_from_dict(m, rec["q"]), history))


def _expire(s: State, queue: str, pending: Pending, now: int) -> None:
    """End the leases that ran out by ``now`` (only heads are leased): the
    message is free again, or a dead letter when that was its last attempt."""
    policy = s.policies.get(queue)
    for e in [e for e in pending.leased.values() if e.expires <= now]:
        e.history.append(lease_expired_entry(e.expires, e.consumer))
        pending.unlease(e)
        if policy is not None and e.message.attempts >= policy.max_attempts:
            _bury(s, queue, pending, e, "lease_expired", e.expires)


def _claim(s: State, rec: dict[str, Any]) -> None:
    queue, at = rec["q"], int(rec["at"])
    pending = s.ordered.get(queue, Pending())
    _expire(s, queue, pending, at)
    taken: list[str] = []
    for n, e in enumerate(pending.pick(at, int(rec["n"]))):
        pending.lease(e, f"{rec['g']}{n:x}", at + int(rec["x"]), rec["c"])
        e.message = replace(e.message, attempts=e.message.attempts + 1)
        taken.append(e.message.id)
    _mine(s, rec, taken)


def _held(s: State, rec: dict[str, Any]) -> tuple[Pending, list[Entry], list[str]]:
    """The entries a change names with their current lease token, and the ids
    of the others (their lease was lost)."""
    pending = s.ordered.get(rec["q"], Pending())
    held, lost = [], []
    for mid, token in rec["ids"]:
        e = pending.entries.get(mid)
        if e is not None and e.token == token:
            held.append(e)
        else:
            lost.append(mid)
    return pending, held, lost


def _ack(s: State, rec: dict[str, Any]) -> None:
    pending, held, lost = _held(s, rec)
    for e in held:
        pending.remove(e)
    _mine(s, rec, lost)


def _retry(s: State, rec: dict[str, Any]) -> None:
    pending, held, lost = _held(s, rec)
    for e in held:
        pending.unlease(e)
        e.history.append(HistoryEntry.from_dict(rec["y"]))
        e.due = int(rec["a"])
        e.message = replace(e.message, available_at=from_ms(e.due))
    _mine(s, rec, lost)


def _release(s: State, rec: dict[str, Any]) -> None:
    pending, held, lost = _held(s, rec)
    for e in held:
        pending.unlease(e)
        e.message = replace(e.message, attempts=max(0, e.message.attempts - 1))
    _mine(s, rec, lost)


def _extend(s: State, rec: dict[str, Any]) -> None:
    _, held, lost = _held(s, rec)
    for e in held:
        e.expires = int(rec["x"])
    _mine(s, rec, lost)


def _dead(s: State, rec: dict[str, Any]) -> None:
    pending, held, lost = _held(s, rec)
    for e in held:
        e.history.append(HistoryEntry.from_dict(rec["y"]))
        _bury(s, rec["q"], pending, e, rec["reason"], int(rec["at"]))
    _mine(s, rec, lost)


def _purge(s: State, rec: dict[str, Any]) -> None:
    _mine(s, rec, len(s.ordered.pop(rec["q"], Pending()).entries))


def _bury(
    s: State, queue: str, pending: Pending, e: Entry, reason: str, at: int
) -> None:
    pending.remove(e)
    s.bury(
        DeadLetter(
            message=e.message,
            queue=queue,
            reason=reason,
            error=e.history[-1].error if e.history else None,
            history=e.history,
            attempts=e.message.attempts,
            dead_at=from_ms(at),
        )
    )


ORDER_HANDLERS = {
    "os": _send,
    "oc": _claim,
    "oa": _ack,
    "or": _retry,
    "ol": _release,
    "ox": _extend,
    "od": _dead,
    "op": _purge,
}
