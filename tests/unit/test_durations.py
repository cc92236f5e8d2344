"""DurationRecorder: per-queue batches, cumulative buckets, best-effort flushes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping

import anyio
import pytest

from postroom.backends.base import Backend, DurationHistogram
from postroom.backends.memory import MemoryBackend
from postroom.model.errors import BackendError
from postroom.runtime.durations import DurationRecorder


class _NoDurations(MemoryBackend):
    """A backend that keeps no durations: the ABC's default."""

    async def record_durations(
        self, queue: str, observations: Mapping[str, int], count: int, sum_ms: int
    ) -> None:
        await Backend.record_durations(self, queue, observations, count, sum_ms)


class _Flaky(MemoryBackend):
    """Fails the first ``failures`` flushes, like a broker that is briefly down."""

    failures = 1
    calls = 0

    async def record_durations(
        self, queue: str, observations: Mapping[str, int], count: int, sum_ms: int
    ) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise BackendError("connection refused")
        await super().record_durations(queue, observations, count, sum_ms)


def _url() -> str:
    return f"memory://durations-{uuid.uuid4().hex[:8]}"


def _histogram(backend: Backend, queue: str) -> DurationHistogram:
    async def read() -> DurationHistogram:
        return (await backend.durations([queue]))[queue]

    return anyio.run(read)


def test_recorder_flushes_cumulative_buckets_count_and_sum() -> None:
    backend, recorder = MemoryBackend(_url()), DurationRecorder()
    for seconds in (0.001, 0.005, 0.2, 0.2004, 90.0):
        recorder.observe("q", seconds)
    recorder.observe("other", 0.0)
    assert recorder.pending == 6
    anyio.run(recorder.flush, backend)
    assert recorder.pending == 0
    got = _histogram(backend, "q")
    assert (got.count, got.sum_ms) == (5, 90_406)
    # le=0.005 holds 0.001 and 0.005 (bounds are inclusive), le=0.25 the 0.2s too.
    assert got.buckets[:2] == (2, 2)
    assert got.buckets[6] == 4 and got.buckets[-2:] == (4, 5)
    assert _histogram(backend, "other").buckets[0] == 1


def test_recorder_carries_sub_millisecond_sums_to_the_next_flush() -> None:
    backend, recorder = MemoryBackend(_url()), DurationRecorder()
    recorder.observe("q", 0.0006)
    anyio.run(recorder.flush, backend)
    assert _histogram(backend, "q").sum_ms == 0
    recorder.observe("q", 0.0006)
    anyio.run(recorder.flush, backend)
    assert (_histogram(backend, "q").count, _histogram(backend, "q").sum_ms) == (2, 1)


def test_recorder_turns_off_on_a_backend_without_durations() -> None:
    backend, recorder = _NoDurations(_url()), DurationRecorder()
    recorder.observe("q", 0.1)
    anyio.run(recorder.flush, backend)
    assert not recorder.enabled
    recorder.observe("q", 0.1)
    assert recorder.pending == 0


def test_recorder_keeps_a_failed_batch_for_the_next_flush(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend, recorder = _Flaky(_url()), DurationRecorder()
    backend.failures = 2
    recorder.observe("q", 0.1)
    with caplog.at_level(logging.WARNING, logger="postroom.runtime.durations"):
        anyio.run(recorder.flush, backend)
        recorder.observe("q", 0.3)
        anyio.run(recorder.flush, backend)
    assert [r.getMessage() for r in caplog.records] == [
        "recording handler durations failed: BackendError('connection refused')"
    ]
    assert recorder.pending == 2
    anyio.run(recorder.flush, backend)
    got = _histogram(backend, "q")
    assert (got.count, got.sum_ms, recorder.pending) == (2, 400, 0)


def test_recorder_run_flushes_once_more_when_stopped() -> None:
    backend, recorder = MemoryBackend(_url()), DurationRecorder()

    async def main() -> None:
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(recorder.run, backend, stop, 3600.0)
            recorder.observe("q", 0.05)
            stop.set()

    anyio.run(main)
    assert _histogram(backend, "q").count == 1
