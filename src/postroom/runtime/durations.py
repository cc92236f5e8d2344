"""Handler durations, counted in memory and flushed to the backend in batches.

A worker (and ``postroom serve``, for consumers working over HTTP) observes how
long each handler ran; a :class:`DurationRecorder` adds it to a per-queue
histogram in memory and sends the increments to the backend at most about once
per second (and at shutdown) with :meth:`AsyncClient.record_durations
<postroom.AsyncClient.record_durations>`, never once per message. The
backend keeps the sums, so ``/metrics`` shows the work of every process.

Recording is best effort and never fails a message: a backend that does not keep
durations (``NotSupported``) turns recording off, and a failed flush is logged
and its increments retried with the next flush.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import anyio

from ..model.errors import NotSupported
from ..model.stats import DURATION_BUCKETS, DURATION_LABELS

__all__ = ["FLUSH_SECONDS", "DurationRecorder", "DurationSink"]

log = logging.getLogger(__name__)

# How often pending durations are sent to the backend.
FLUSH_SECONDS = 1.0
# Longest wait for the last flush at shutdown.
FINAL_FLUSH_SECONDS = 5.0


class DurationSink(Protocol):
    """Where durations go: an :class:`~postroom.AsyncClient` (or, in tests, a
    backend)."""

    async def record_durations(
        self, queue: str, observations: Mapping[str, int], count: int, sum_ms: int
    ) -> None:
        """Add a batch of handler durations of ``queue`` to its histogram."""


@dataclass(slots=True)
class _Batch:
    """Durations of one queue not yet sent: per-bucket (not cumulative) counts."""

    hits: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    count: int = 0
    sum_seconds: float = 0.0

    def add(self, seconds: float) -> None:
        self.hits[bisect.bisect_left(DURATION_BUCKETS, seconds)] += 1
        self.count += 1
        self.sum_seconds += seconds

    def merge(self, other: _Batch) -> None:
        self.hits = [a + b for a, b in zip(self.hits, other.hits, strict=True)]
        self.count += other.count
        self.sum_seconds += other.sum_seconds

    def cumulative(self) -> dict[str, int]:
        """Bucket label -> durations at most that long (non-zero only)."""
        out: dict[str, int] = {}
        running = 0
        for label, n in zip(DURATION_LABELS, self.hits, strict=True):
            running += n
            if running:
                out[label] = running
        return out


class DurationRecorder:
    """Per-queue handler duration histograms of this process, flushed in batches."""

    def __init__(self) -> None:
        self._pending: dict[str, _Batch] = {}
        self._carry_ms: dict[str, float] = {}
        self.enabled = True
        self._failing = False

    @property
    def pending(self) -> int:
        """How many durations wait for the next flush."""
        return sum(b.count for b in self._pending.values())

    def observe(self, queue: str, seconds: float) -> None:
        """Count one handler run of ``queue`` that took ``seconds``."""
        if not self.enabled:
            return
        batch = self._pending.get(queue)
        if batch is None:
            batch = self._pending[queue] = _Batch()
        batch.add(max(0.0, seconds))

    async def flush(self, sink: DurationSink) -> None:
        """Send what is pending: one ``record_durations`` call per queue."""
        batches, self._pending = self._pending, {}
        for queue, batch in batches.items():
            if not self.enabled:
                return
            try:
                await self._send(sink, queue, batch)
            except NotSupported:
                log.debug("the backend does not keep handler durations")
                self.enabled = False
            except Exception as exc:  # a failed flush must never fail a message
                self._keep(queue, batch)
                if not self._failing:
                    log.warning("recording handler durations failed: %r", exc)
                self._failing = True
            else:
                self._failing = False

    async def _send(self, sink: DurationSink, queue: str, batch: _Batch) -> None:
        # Whole milliseconds go out; the fraction waits for the next batch.
        total_ms = batch.sum_seconds * 1000 + self._carry_ms.get(queue, 0.0)
        sum_ms = int(total_ms)
        await sink.record_durations(queue, batch.cumulative(), batch.count, sum_ms)
        self._carry_ms[queue] = total_ms - sum_ms

    def _keep(self, queue: str, batch: _Batch) -> None:
        """Put an unsent batch back in front of what arrived meanwhile."""
        newer = self._pending.get(queue)
        if newer is not None:
            batch.merge(newer)
        self._pending[queue] = batch

    async def run(
        self,
        sink: DurationSink,
        stop: anyio.Event | None = None,
        interval: float = FLUSH_SECONDS,
    ) -> None:
        """Flush every ``interval`` seconds until ``stop`` is set (or cancelled);
        after ``stop``, flush one last time."""
        waiter = stop.wait if stop is not None else anyio.sleep_forever
        while self.enabled:
            with anyio.move_on_after(interval):
                await waiter()
            if stop is not None and stop.is_set():
                await self.final_flush(sink)
                return
            if self._pending:
                await self.flush(sink)

    async def final_flush(self, sink: DurationSink) -> None:
        """Flush at shutdown: shielded from cancellation, bounded in time."""
        if not self._pending or not self.enabled:
            return
        with anyio.move_on_after(FINAL_FLUSH_SECONDS, shield=True):
            await self.flush(sink)
