"""Handler duration histograms on every backend: recorded in batches, summed, read
back per queue (what ``/metrics`` shows for every worker process)."""

from __future__ import annotations

from collections.abc import Mapping

import anyio
import pytest

import postroom
from postroom import Client
from postroom.model.stats import DURATION_LABELS, DurationHistogram

from .workers import running, settled, wait_until


def _record(
    client: Client, queue: str, cells: Mapping[str, int], count: int, sum_ms: int
) -> None:
    client.record_durations(queue, cells, count, sum_ms)


def _read(client: Client, *queues: str) -> dict[str, DurationHistogram]:
    return client.durations(list(queues))


def _cumulative(from_label: str, n: int) -> dict[str, int]:
    """``n`` durations in the bucket ``from_label``: counted there and above."""
    start = DURATION_LABELS.index(from_label)
    return {label: n for label in DURATION_LABELS[start:]}


def test_durations_add_up_per_queue(client: Client) -> None:
    client.declare_queue("a")
    _record(client, "a", _cumulative("0.01", 2), 2, 15)
    _record(client, "a", _cumulative("1.0", 1), 1, 800)
    _record(client, "b", _cumulative("+Inf", 1), 1, 90_000)
    got = _read(client, "a", "b")
    a = got["a"]
    assert (a.count, a.sum_ms, a.sum_seconds) == (3, 815, 0.815)
    by_label = dict(zip(DURATION_LABELS, a.buckets, strict=True))
    assert by_label["0.005"] == 0
    assert by_label["0.01"] == by_label["0.75"] == 2
    assert by_label["1.0"] == by_label["+Inf"] == 3
    b = got["b"]
    assert (b.count, b.sum_ms, b.buckets[-1], sum(b.buckets)) == (1, 90_000, 1, 1)


def test_durations_of_an_unrecorded_queue_are_zero(client: Client) -> None:
    client.declare_queue("idle")
    assert _read(client, "idle", "never-declared") == {
        "idle": DurationHistogram(),
        "never-declared": DurationHistogram(),
    }
    assert _read(client) == {}


def test_durations_reject_unknown_buckets_and_negatives(client: Client) -> None:
    with pytest.raises(postroom.InvalidArgument, match="unknown bucket"):
        _record(client, "a", {"0.3": 1}, 1, 300)
    with pytest.raises(postroom.InvalidArgument, match="sum_ms must be from 0"):
        _record(client, "a", {"+Inf": 1}, 1, -5)
    assert _read(client, "a")["a"] == DurationHistogram()


def test_durations_are_shared_by_clients_of_one_url(url: str, client: Client) -> None:
    _record(client, "q", _cumulative("0.1", 1), 1, 70)
    with postroom.connect(url) as other:
        _record(other, "q", _cumulative("0.1", 4), 4, 280)
        assert _read(other, "q")["q"].count == 5
    assert _read(client, "q")["q"].sum_ms == 350


def test_worker_records_handler_durations(client: Client, url: str) -> None:
    app = postroom.App(url)

    @app.handler("timed", concurrency=4)
    async def timed(body: int) -> None:
        await anyio.sleep(0.03)
        if body == 2:
            raise postroom.Reject("two is rejected")

    with running(app, url):
        client.send_many("timed", [1, 2, 3])
        wait_until(lambda: _read(client, "timed")["timed"].count == 3)
        first = _read(client, "timed")["timed"]
        client.send_many("timed", [4, 5])
        wait_until(lambda: settled(client, "timed"))
    # Whatever the last periodic flush missed, the shutdown flush sent.
    last = _read(client, "timed")["timed"]
    assert (first.count, last.count) == (3, 5)
    assert first.sum_ms >= 3 * 30 and last.sum_ms >= 5 * 30
    by_label = dict(zip(DURATION_LABELS, last.buckets, strict=True))
    assert by_label["0.025"] == 0  # each handler slept 30 ms
    assert by_label["+Inf"] == 5
