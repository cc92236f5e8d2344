"""Samples over time on every backend that keeps them (``capabilities.samples``):
one per time bucket whoever writes it, every process's work counted, rates from
the counters' differences, kept for a new client; a backend without them raises
``NotSupported`` (the test says so and skips)."""

from __future__ import annotations

from datetime import datetime

import anyio
import pytest

import postroom
from postroom import Client
from postroom.model.message import from_ms, now_ms
from postroom.model.samples import STEP_MS, Sample, bucket_of, series

from .workers import running, wait_until


def _requires_samples(client: Client) -> None:
    if not client.aclient.capabilities.samples:
        with pytest.raises(postroom.NotSupported):
            anyio.run(_samples, client.url)
        pytest.skip("this backend keeps no samples over time (NotSupported, declared)")


async def _samples(url: str) -> list[Sample]:
    async with postroom.connect_async(url) as ac:
        return await ac.samples()


async def _take(url: str, at: datetime) -> bool:
    async with postroom.connect_async(url) as ac:
        return await ac.take_sample(at)


def test_one_sample_per_bucket_whoever_writes_it(client: Client) -> None:
    _requires_samples(client)
    client.send("jobs", {"n": 1})
    at = from_ms(bucket_of(now_ms()) - 3 * STEP_MS + 1)

    async def two_processes() -> list[bool]:
        async with (
            postroom.connect_async(client.url) as one,
            postroom.connect_async(client.url) as two,
        ):
            return [await one.take_sample(at), await two.take_sample(at)]

    assert anyio.run(two_processes) == [True, False]
    [sample] = anyio.run(_samples, client.url)
    assert sample.at_ms == bucket_of(now_ms()) - 3 * STEP_MS + 1
    assert sample.queues["jobs"].sent == 1 and sample.queues["jobs"].ready == 1


def test_rates_are_counter_differences_over_time(client: Client) -> None:
    _requires_samples(client)
    client.declare_queue("jobs")
    client.declare_queue("mail")
    base = bucket_of(now_ms()) - 5 * STEP_MS
    assert anyio.run(_take, client.url, from_ms(base))
    client.send_many("jobs", [{"n": n} for n in range(5)])
    client.send("mail", "hello")
    assert anyio.run(_take, client.url, from_ms(base + STEP_MS))
    acked = 0
    while acked < 3:  # a receive may return fewer than asked
        for delivery in client.receive("jobs", max_messages=3 - acked):
            client.ack(delivery)
            acked += 1
    assert anyio.run(_take, client.url, from_ms(base + 2 * STEP_MS))
    # Read by another client, as after a restart of the process that took them.
    samples = anyio.run(_samples, client.url)
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
    [sample] = anyio.run(_samples, client.url)
    assert {"jobs", "other"} <= set(sample.queues)
    assert sample.queues["other"].sent == 1
