"""Grouped and prioritised messages: a replicated log in the meta stream
(docs/backends/rabbitmq.md, "Groups and priorities").

A message sent with a ``group`` or a priority above 0 is not published to its
AMQP queue: its send is a record of the meta stream (``os``), and so is every
change of its state: a claim (``oc``), an ack (``oa``), a retry (``or``), a dead
letter (``od``), a release (``ol``), an extension (``ox``), a purge (``op``).
Every process folds them in stream order, so every process knows every such
message's state. A claim record says who claims how many at what time; the fold
picks the messages (:func:`pick`, the rules of :mod:`postroom.model.order`) and
gives them lease tokens derived from the record, the same in every process, so
two processes never lease one message. A lease that ran out is ended by the next
claim record after its end (dead-lettered when that was its last attempt). A
change names the lease token it was made with: a holder whose lease was taken
over changes nothing, and learns it (``LeaseLost``) from its record's result.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ...model.message import DeadLetter, HistoryEntry, Message, from_ms, to_ms_dt
from .._common import lease_expired_entry
from ._records import message_dict, message_from_dict

if TYPE_CHECKING:
    from ._state import State

__all__ = ["ORDER_HANDLERS", "Entry", "claimable", "next_due"]


@dataclass(slots=True)
class Entry:
    """A grouped or prioritised message as folded: ``message.attempts`` counts
    its deliveries so far; ``token`` is its lease's ("" when not leased)."""

    message: Message
    history: list[HistoryEntry] = field(default_factory=list)
    token: str = ""
    expires: int = 0
    consumer: str = ""

    def free(self, now: int) -> bool:
        """Whether a claim at ``now`` may take it (not leased, or leased and
        ran out; due), if it heads its group."""
        due = to_ms_dt(self.message.available_at) <= now
        return due and (not self.token or self.expires <= now)


def entry_record(message: Message, history: list[HistoryEntry]) -> dict[str, Any]:
    """A message of an ``os`` record (group and priority in ``message_dict``)."""
    return {**message_dict(message), "y": [h.to_dict() for h in history]}


def heads(entries: dict[str, Entry]) -> list[Entry]:
    """Every ungrouped entry and the first of each group, in send order."""
    seen: set[str] = set()
    out: list[Entry] = []
    for e in entries.values():
        group = e.message.group
        if group is None:
            out.append(e)
        elif group not in seen:
            seen.add(group)
            out.append(e)
    return out


def claimable(entries: dict[str, Entry] | None, now: int) -> bool:
    """Whether a claim at ``now`` would take one of ``entries``."""
    return bool(entries) and any(e.free(now) for e in heads(entries or {}))


def next_due(entries: dict[str, Entry] | None, now: int) -> int | None:
    """When (ms) the earliest head not free at ``now`` becomes free."""
    dues = [
        e.expires if e.token else to_ms_dt(e.message.available_at)
        for e in heads(entries or {})
        if not e.free(now)
    ]
    return min(dues, default=None)


def pick(entries: dict[str, Entry], now: int, wanted: int) -> list[Entry]:
    """The entries a claim of ``wanted`` at ``now`` takes: free heads, highest
    priority first, then send order."""
    free = [e for e in heads(entries) if e.free(now)]
    free.sort(key=lambda e: -e.message.priority)  # stable: send order kept
    return free[:wanted]


def _mine(s: State, rec: dict[str, Any], result: Any) -> None:
    if rec.get("i") == s.me:
        s.results[str(rec["g"])] = result


def _send(s: State, rec: dict[str, Any]) -> None:
    entries = s.ordered.setdefault(rec["q"], {})
    for m in rec["ms"]:
        if m["id"] not in entries:  # a send retried after its record went out
            history = [HistoryEntry.from_dict(h) for h in m.get("y") or []]
            entries[m["id"]] = Entry(message_from_dict(m, rec["q"]), history)


def _expire(s: State, queue: str, entries: dict[str, Entry], now: int) -> None:
    """End the leases that ran out by ``now``: the message is free again, or a
    dead letter when that was its last attempt."""
    policy = s.policies.get(queue)
    for e in [e for e in entries.values() if e.token and e.expires <= now]:
        e.history.append(lease_expired_entry(e.expires, e.consumer))
        e.token = ""
        if policy is not None and e.message.attempts >= policy.max_attempts:
            _bury(s, queue, entries, e, "lease_expired", e.expires)


def _claim(s: State, rec: dict[str, Any]) -> None:
    queue, at = rec["q"], int(rec["at"])
    entries = s.ordered.get(queue, {})
    _expire(s, queue, entries, at)
    taken: list[str] = []
    for n, e in enumerate(pick(entries, at, int(rec["n"]))):
        e.token, e.expires, e.consumer = (
            f"{rec['g']}{n:x}",
            at + int(rec["x"]),
            rec["c"],
        )
        e.message = replace(e.message, attempts=e.message.attempts + 1)
        taken.append(e.message.id)
    _mine(s, rec, taken)


def _held(
    s: State, rec: dict[str, Any]
) -> tuple[dict[str, Entry], list[Entry], list[str]]:
    """The entries a change names with their current lease token, and the ids
    of the others (their lease was lost)."""
    entries = s.ordered.get(rec["q"], {})
    held, lost = [], []
    for mid, token in rec["ids"]:
        e = entries.get(mid)
        if e is not None and e.token == token:
            held.append(e)
        else:
            lost.append(mid)
    return entries, held, lost


def _ack(s: State, rec: dict[str, Any]) -> None:
    entries, held, lost = _held(s, rec)
    for e in held:
        del entries[e.message.id]
    _mine(s, rec, lost)


def _retry(s: State, rec: dict[str, Any]) -> None:
    _, held, lost = _held(s, rec)
    for e in held:
        e.token = ""
        e.history.append(HistoryEntry.from_dict(rec["y"]))
        e.message = replace(e.message, available_at=from_ms(int(rec["a"])))
    _mine(s, rec, lost)


def _release(s: State, rec: dict[str, Any]) -> None:
    _, held, lost = _held(s, rec)
    for e in held:
        e.token = ""
        e.message = replace(e.message, attempts=max(0, e.message.attempts - 1))
    _mine(s, rec, lost)


def _extend(s: State, rec: dict[str, Any]) -> None:
    _, held, lost = _held(s, rec)
    for e in held:
        e.expires = int(rec["x"])
    _mine(s, rec, lost)


def _dead(s: State, rec: dict[str, Any]) -> None:
    entries, held, lost = _held(s, rec)
    for e in held:
        e.history.append(HistoryEntry.from_dict(rec["y"]))
        _bury(s, rec["q"], entries, e, rec["reason"], int(rec["at"]))
    _mine(s, rec, lost)


def _purge(s: State, rec: dict[str, Any]) -> None:
    _mine(s, rec, len(s.ordered.pop(rec["q"], {})))


def _bury(
    s: State, queue: str, entries: dict[str, Entry], e: Entry, reason: str, at: int
) -> None:
    entries.pop(e.message.id, None)
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
