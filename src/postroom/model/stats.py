"""Counted values read from a backend: topic info, lifetime counters, handler
duration histograms (the buckets and the cells a backend stores)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "COUNTERS",
    "DURATION_BUCKETS",
    "DURATION_LABELS",
    "DURATION_TOTALS",
    "DurationHistogram",
    "TopicInfo",
    "duration_cells",
]

COUNTERS = ("sent", "acked", "retried", "dead_lettered", "redriven")

# Upper bounds (seconds) of the handler duration histogram's buckets: Prometheus's
# default buckets, then 30 s, 60 s and +Inf. Backends store one cumulative counter
# per bucket, named by its label, beside ``count`` and ``sum_ms``.
DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75,
    1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0, math.inf,
)  # fmt: skip
DURATION_LABELS: tuple[str, ...] = tuple(
    "+Inf" if math.isinf(b) else repr(b) for b in DURATION_BUCKETS
)
DURATION_TOTALS = ("count", "sum_ms")


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """A topic: how many subscriptions it has and how much was published to it."""

    topic: str
    subscriptions: int
    published: int
    unrouted: int


@dataclass(frozen=True, slots=True)
class DurationHistogram:
    """Handler durations of one queue, over every process: cumulative bucket
    counts (one per :data:`DURATION_BUCKETS`), the count and the sum."""

    buckets: tuple[int, ...] = (0,) * len(DURATION_BUCKETS)
    count: int = 0
    sum_ms: int = 0

    @property
    def sum_seconds(self) -> float:
        """The sum of the durations in seconds."""
        return self.sum_ms / 1000

    @classmethod
    def from_cells(cls, cells: Mapping[str, int]) -> DurationHistogram:
        """Build it from stored cells (bucket labels, ``count``, ``sum_ms``)."""
        return cls(
            buckets=tuple(int(cells.get(label, 0)) for label in DURATION_LABELS),
            count=int(cells.get("count", 0)),
            sum_ms=int(cells.get("sum_ms", 0)),
        )


def duration_cells(
    observations: Mapping[str, int], count: int, sum_ms: int
) -> dict[str, int]:
    """The increments a backend's ``record_durations`` adds: each non-zero
    bucket's, ``count`` and ``sum_ms``. Unknown labels or negatives are errors."""
    unknown = set(observations) - set(DURATION_LABELS)
    if unknown:
        raise ValueError(
            f"unknown duration bucket(s) {sorted(unknown)}: use DURATION_LABELS"
        )
    cells = {**observations, "count": count, "sum_ms": sum_ms}
    if any(n < 0 for n in cells.values()):
        raise ValueError(f"duration increments must be >= 0, got {cells}")
    return {name: int(n) for name, n in cells.items() if n}
