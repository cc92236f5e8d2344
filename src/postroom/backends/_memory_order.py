"""Which messages a ``memory://`` claim takes, and when: groups, priorities and the
rate limit (the rules are in :mod:`postroom.model.order`).

A queue's records are kept in send order (a dict keeps insertion order; a retry
keeps its record's place), so the first record of a group is its head.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..model.message import Message
from ..model.order import take_permits
from ._memory_state import QueueState, Record

__all__ = ["next_due", "note", "pick"]


def note(q: QueueState, message: Message) -> None:
    """Record that ``q`` holds a grouped or prioritised message (its claims then
    look at every record, not just the first ready ones)."""
    if message.group is not None or message.priority:
        q.ordered = True


def _heads(q: QueueState) -> Iterator[Record]:
    """Every ungrouped record and the head of each group, in send order."""
    seen: set[str] = set()
    for rec in q.messages.values():
        group = rec.message.group
        if group is None:
            yield rec
        elif group not in seen:
            seen.add(group)
            yield rec


def _claimable(q: QueueState, now: int, limit: int) -> list[Record]:
    """Up to ``limit`` records a claim at ``now`` takes, in delivery order:
    highest priority first, then send order; of a group only its head."""
    out: list[Record] = []
    if not q.ordered:  # send order is delivery order: stop at the limit
        for rec in q.messages.values():
            if len(out) >= limit:
                break
            if rec.token is None and rec.available_ms <= now:
                out.append(rec)
        return out
    out = [r for r in _heads(q) if r.token is None and r.available_ms <= now]
    out.sort(key=lambda r: -r.message.priority)  # stable: send order kept
    return out[:limit]


def pick(q: QueueState, now: int, wanted: int) -> tuple[list[Record], int]:
    """The records a claim of up to ``wanted`` at ``now`` takes, and when (ms)
    the queue's rate limit grants its next permit (``now``: one is there, or
    there is no limit). The rate limit's bucket is updated."""
    rate = q.policy.rate_limit
    if rate is None:
        return _claimable(q, now, wanted), now
    allowed = take_permits(rate, q.bucket, now, wanted)
    picked = _claimable(q, now, allowed.granted)
    q.bucket, wait_ms = allowed.after(len(picked))
    return picked, now + wait_ms


def next_due(q: QueueState) -> int | None:
    """When (ms) the queue may next have a claimable record: the earliest end of
    a lease or of a delay among the records that are not behind a group head."""
    dues = [r.lease_ms if r.token else r.available_ms for r in _heads(q)]
    return min(dues, default=None)
