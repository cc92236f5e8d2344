"""Delivery order and pace: priorities, message groups, rate limits (pure logic).

The rules every backend applies when it claims (``docs/scheduling.md``):

- **Priorities** (0 to 9, 9 first; a message sent without one has 0): a claim
  takes the visible messages of highest priority first; equal priorities keep the
  queue's usual order (oldest first).
- **Groups**: a message with a ``group`` can be claimed only when no other message
  of its queue and group was sent before it, whatever that one's state (ready,
  delayed, retrying or in flight). So a group delivers in send order, one message
  at a time, and a head that is retrying holds its group back until it is acked
  or becomes a dead letter. Priorities order the heads of groups and the
  ungrouped messages between them; within a group send order wins.
- **Rate limits**: a token bucket per queue, kept in the backend and updated in
  the claim's own transaction. It refills at ``rate_limit`` permits a second up
  to a burst of :func:`burst` permits; each delivery (redeliveries included)
  takes one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Bucket", "Permits", "burst", "take_permits"]

# Share of a second's permits a bucket holds when full: a limit of 50 per second
# lets at most 5 deliveries through at once after a pause.
BURST_SECONDS = 0.1


def burst(rate_limit: float) -> float:
    """How many permits a full bucket holds: a tenth of a second's, at least 1."""
    return max(1.0, rate_limit * BURST_SECONDS)


@dataclass(frozen=True, slots=True)
class Bucket:
    """A queue's token bucket as stored: ``tokens`` left at ``at_ms``."""

    tokens: float
    at_ms: int


@dataclass(frozen=True, slots=True)
class Permits:
    """What a claim may take: ``granted`` deliveries, and the bucket to store
    once it took ``taken`` of them (see :meth:`after`)."""

    granted: int
    tokens: float
    at_ms: int
    rate_limit: float

    def after(self, taken: int) -> tuple[Bucket, int]:
        """The bucket once ``taken`` (<= ``granted``) deliveries were made, and
        the milliseconds until its next permit (0: one is there now)."""
        left = self.tokens - taken
        wait_ms = 0 if left >= 1 else math.ceil((1 - left) * 1000 / self.rate_limit)
        return Bucket(left, self.at_ms), wait_ms


def take_permits(
    rate_limit: float, bucket: Bucket | None, now_ms: int, wanted: int
) -> Permits:
    """Refill ``bucket`` (``None``: never used, so full) up to ``now_ms`` and
    grant up to ``wanted`` permits from it."""
    full = burst(rate_limit)
    if bucket is None:
        tokens = full
    else:
        elapsed = max(0, now_ms - bucket.at_ms) / 1000
        tokens = min(full, bucket.tokens + elapsed * rate_limit)
    at = now_ms if bucket is None else max(now_ms, bucket.at_ms)
    return Permits(min(wanted, int(tokens)), tokens, at, rate_limit)
