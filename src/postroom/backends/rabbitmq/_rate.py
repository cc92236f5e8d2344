"""A queue's rate limit shared by every process: one token bucket, folded from
``permit`` records of the live stream (docs/backends/rabbitmq.md, "Rate limits").

AMQP has no shared counter, but a stream orders records. A claim of a
rate-limited queue takes its messages first, then appends "want ``n`` permits at
``t``" and waits for the record to come back. Every process folds the same
records in the same order with :func:`postroom.model.order.take_permits`, so all
grant each record the same permits; the claimer keeps as many messages as its
record was granted (the others wait in its lane's buffer for a later claim).

A process reads the live stream from ``LIVE_WINDOW`` back, so it may miss the
records that emptied a bucket just before. Until the fold knows the bucket's
state it grants nothing (the claimer's messages wait): it knows it once a record
comes ``refill_ms`` (the time a bucket takes to fill up) after every record it
could have missed and every record it saw, when the bucket is full whatever
came before. Until then its claims ask for no permits, except once no record
came for that long (:func:`estimate`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from ...model.order import Bucket, burst, take_permits

__all__ = ["Rate", "fold_permit", "permit_record", "refill_ms"]

# A record is stamped by its writer before it reaches the stream: one read from
# a time on may have been stamped up to this much earlier.
SKEW_MS = 1_000


@dataclass(slots=True)
class Rate:
    """A queue's bucket as this process folded it; ``last_at``: the latest time
    a record (seen or possibly missed) took permits, while not ``synced``."""

    bucket: Bucket | None = None
    synced: bool = False
    last_at: int = 0


def refill_ms(rate: float) -> int:
    """How long an empty bucket takes to fill up (ms)."""
    return math.ceil(burst(rate) * 1000 / rate)


def permit_record(
    queue: str, wanted: int, rate: float, at: int, me: str
) -> dict[str, Any]:
    """The record a claim appends to ask for ``wanted`` permits."""
    rid = os.urandom(8).hex()
    return {
        "t": "permit",
        "q": queue,
        "n": wanted,
        "r": rate,
        "at": at,
        "i": me,
        "g": rid,
    }


def fold_permit(
    rates: dict[str, Rate],
    grants: dict[str, tuple[int, int]],
    me: str,
    seen_from: int,
    rec: dict[str, Any],
) -> None:
    """Apply a ``permit`` record; for this process's own (``me``), store what it
    was granted and when the next permit is due (ms) under its ``rid``."""
    queue, at, rate = rec["q"], int(rec["at"]), float(rec["r"])
    held = rates.get(queue)
    if held is None:
        held = rates[queue] = Rate(last_at=seen_from + SKEW_MS)
    if not held.synced and at - held.last_at >= refill_ms(rate):
        held.synced, held.bucket = True, None  # full, whatever came before
    if not held.synced:
        held.last_at = max(held.last_at, at)
        if rec.get("i") == me:
            grants[str(rec.get("g"))] = (0, held.last_at + refill_ms(rate))
        return
    permits = take_permits(rate, held.bucket, at, int(rec["n"]))
    held.bucket, wait_ms = permits.after(permits.granted)
    if rec.get("i") == me:
        grants[str(rec.get("g"))] = (permits.granted, permits.at_ms + wait_ms)


def estimate(rate: Rate | None, limit: float, now: int, wanted: int) -> tuple[int, int]:
    """How many permits a record appended at ``now`` would likely get, by this
    process's fold so far, and when the next permit is due (ms): a claim asks for
    no more, and asks for none when none is there. While the fold does not know
    the bucket, a claim asks only once no record came for a refill time (its
    record then finds the bucket full): claims that asked sooner would keep each
    other from ever finding it so."""
    if rate is None:
        return wanted, now
    if not rate.synced:
        due = rate.last_at + refill_ms(limit)
        return (wanted, now) if now >= due else (0, due)
    permits = take_permits(limit, rate.bucket, now, wanted)
    _, wait_ms = permits.after(0)
    return permits.granted, permits.at_ms + wait_ms
