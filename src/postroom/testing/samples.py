"""Samples over time on every backend that keeps them (``capabilities.samples``):
one per time bucket whoever writes it, every process's work counted, rates from
the counters' differences, kept for a new client; a backend without them raises
``NotSupported`` (the test says so and skips)."""

from __future__ import annotations

import pytest

import postroom
from postroom import Client
from postroom.model.message import from_ms, now_ms
from postroom.model.samples import STEP_MS, bucket_of, series

from .workers import running, wait_until


def _requires_samples(client: Client) -> None:
    if not client.aclient.capabilities.samples:
        with pytest.raises(postroom.NotSupported):
            client.samples()
        pytest.skip("this backend keeps no samples over time (NotSupported, declared)")


def test_one_sample_per_bucket_whoever_writes_it(client: Client) -> None:
    _requires_samples(client)
    client.send("jobs", {"n": 1})
    at_ms = bucket_of(now_ms()) - 3 * STEP_MS + 1
    at = from_ms(at_ms)
    with postroom.connect(client.url) as one, postroom.connect(client.url) as two:
        assert [one.take_sample(at), two.take_sample(at)] == [True, False]
    [sample] = client.samples()
    assert sample.at_ms == at_ms
    assert sample.queues["jobs"].sent == 1 and sample.queues["jobs"].ready == 1


def test_rates_are_counter_differences_over_time(client: Client) -> None:
    _requires_samples(client)
    client.declare_queue("jobs")
    client.declare_queue("mail")
    base = bucket_of(now_ms()) - 5 * STEP_MS
    assert client.take_sample(from_ms(base))
    client.send_many("jobs", [{"n": n} for n in range(5)])
    client.send("mail", "hello")
    assert client.take_sample(from_ms(base + STEP_MS))
    acked = 0
    while acked < 3:  # a receive may return fewer than asked
        for delivery in client.receive("jobs", max_messages=3 - acked):
            client.ack(delivery)
            acked += 1
    assert client.take_sample(from_ms(base + 2 * STEP_MS))
    # Read by another client, as after a restart of the process that took them.
    with postroom.connect(client.url) as other:
        samples = other.samples()
    assert [s.at_ms for s in samples] == [base + n * STEP_MS for n in range(3)]
    points = series(samples, ["jobs"])
    assert [p.rates["sent"] for p in points] == [None, 0.5, 0.0]
    assert [p.rates["acked"] for p in points] == [None, 0.0, 0.3]
    assert [p.ready for p in points] == [0, 5, 2]
    both = series(samples, ["jobs", "mail"])
    assert [p.rates["sent"] for p in both] == [None, 0.6, 0.0]
    assert [p.ready for p in both] == [0, 6, 3]


def test_running_worker_takes_samples_of_every_queue(client: Client, url: str) -> None:
    _requires_samples(client)
    app = postroom.App(url)

    @app.handler("jobs")
    def handle(body: dict[str, int]) -> None:
        return None

    client.send("other", {"n": 0})  # a queue no handler of this worker consumes
    with running(app, url) as worker:
        wait_until(lambda: worker.sampler.taken >= 1)
    [sample] = client.samples()
    assert {"jobs", "other"} <= set(sample.queues)
    assert sample.queues["other"].sent == 1
