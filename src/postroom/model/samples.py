"""Samples of every queue's counters and depths over time (pure, no I/O).

A sample is taken every :data:`STEP_SECONDS` by whichever process gets there
first (a worker or ``postroom serve``): the backend keeps one per time bucket
(``floor(time / step) * step``) for :data:`WINDOW_SECONDS`, and a second writer
of the same bucket is ignored, so several processes never count twice. Rates
per second are the counters' differences between consecutive samples divided by
the time between them; a counter that went down (the queue was deleted and
created again) counts from zero.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import InvalidArgument

__all__ = [
    "GAP_STEPS",
    "RATES",
    "STEP_MS",
    "STEP_SECONDS",
    "WINDOW_MS",
    "WINDOW_SECONDS",
    "Point",
    "QueueSample",
    "Sample",
    "bucket_of",
    "sample_time",
    "series",
]

STEP_SECONDS = 10
WINDOW_SECONDS = 3600
STEP_MS = STEP_SECONDS * 1000
WINDOW_MS = WINDOW_SECONDS * 1000
# Samples further apart than this many steps leave a gap in the rates (nothing
# sampled meanwhile: no process was running).
GAP_STEPS = 3
RATES = ("sent", "acked", "retried", "dead_lettered")


def bucket_of(at_ms: int) -> int:
    """The start of the time bucket of ``at_ms``."""
    return at_ms - at_ms % STEP_MS


def sample_time(value: Any, now_ms: int) -> int:
    """``value`` (an aware datetime within the window, not in the future) in
    milliseconds; :class:`InvalidArgument` naming ``at`` otherwise."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidArgument(
            f"at must be a timezone-aware datetime, not {value!r} "
            f"({type(value).__name__})"
        )
    at_ms = int(value.timestamp() * 1000)
    if not now_ms - WINDOW_MS < at_ms <= now_ms:
        raise InvalidArgument(
            f"at must be within the last {WINDOW_SECONDS} s and not in the future "
            f"(got {value.isoformat()})"
        )
    return at_ms


@dataclass(frozen=True, slots=True)
class QueueSample:
    """One queue at one time: its lifetime counters and its depths."""

    sent: int
    acked: int
    retried: int
    dead_lettered: int
    ready: int
    oldest_age: float | None

    def counter(self, name: str) -> int:
        """One of :data:`RATES`."""
        value: int = getattr(self, name)
        return value


@dataclass(frozen=True, slots=True)
class Sample:
    """Every queue at ``at_ms`` (wall-clock milliseconds)."""

    at_ms: int
    queues: Mapping[str, QueueSample]

    def dumps(self) -> str:
        """The record a backend stores (one array per queue)."""
        doc = {
            "t": self.at_ms,
            "q": {
                name: [q.sent, q.acked, q.retried, q.dead_lettered, q.ready,
                       q.oldest_age]
                for name, q in self.queues.items()
            },
        }  # fmt: skip
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def loads(cls, record: str) -> Sample:
        """Inverse of :meth:`dumps`."""
        doc = json.loads(record)
        queues = {}
        for name, (sent, acked, retried, dead, ready, age) in doc["q"].items():
            queues[str(name)] = QueueSample(
                int(sent), int(acked), int(retried), int(dead), int(ready),
                None if age is None else float(age),
            )  # fmt: skip
        return cls(int(doc["t"]), queues)


@dataclass(frozen=True, slots=True)
class Point:
    """The chosen queues at one sample: rates per second since the sample before
    (``None`` at the first one and after a gap), ready messages summed and the
    oldest age (seconds) of any of them."""

    at_ms: int
    rates: Mapping[str, float | None]
    ready: int
    oldest_age: float | None


def _increase(before: QueueSample | None, after: QueueSample, name: str) -> int:
    now = after.counter(name)
    if before is None or before.counter(name) > now:
        return now  # created (or deleted and created again) in between
    return now - before.counter(name)


def series(samples: Sequence[Sample], queues: Collection[str]) -> list[Point]:
    """The points of ``queues`` (summed), one per sample that has any of them,
    oldest first. ``samples`` are in time order."""
    points: list[Point] = []
    previous: Sample | None = None
    for sample in samples:
        present = [q for q in queues if q in sample.queues]
        if not present:
            previous = None
            continue
        rates: dict[str, float | None] = dict.fromkeys(RATES)
        if previous is not None:
            seconds = (sample.at_ms - previous.at_ms) / 1000
            if 0 < seconds <= GAP_STEPS * STEP_SECONDS:
                for name in RATES:
                    total = sum(
                        _increase(previous.queues.get(q), sample.queues[q], name)
                        for q in present
                    )
                    rates[name] = total / seconds
        ages = [a for q in present if (a := sample.queues[q].oldest_age) is not None]
        points.append(
            Point(
                sample.at_ms,
                rates,
                sum(sample.queues[q].ready for q in present),
                max(ages) if ages else None,
            )
        )
        previous = sample
    return points
