"""RabbitMQ: what a worker's claims and acks cost the broker.

Acks go out as few ``multiple`` acks (a quorum queue writes one log entry per
``basic.ack``), a claim that finds pushed messages does no ``basic.get``, and a
gauge flush does not publish the counters before they are due.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

import postroom
from postroom.backends.rabbitmq import RabbitBackend
from postroom.backends.rabbitmq import _streams as streams_module
from tests.conftest import require_service

pytestmark = pytest.mark.slow

LEASE_MS = 30_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def url() -> Iterator[str]:
    require_service("rabbitmq", "127.0.0.1", 5672)
    prefix = "settle" + uuid.uuid4().hex[:10]
    yield f"amqp://guest:guest@127.0.0.1:5672/?prefix={prefix}"
    from tests.rabbitmq import delete_prefixes

    delete_prefixes([prefix])


@pytest.fixture
async def client(url: str) -> AsyncIterator[postroom.AsyncClient]:
    async with postroom.connect_async(url) as c:
        await c.declare_queue("q")
        yield c


def _record(calls: list[Any], obj: Any, name: str) -> None:
    """Record the arguments of each call of ``obj.name``."""
    original = getattr(obj, name)

    async def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return await original(*args, **kwargs)

    setattr(obj, name, recording)


async def _until(check: Any) -> None:
    with anyio.fail_after(10):
        while not check():
            await anyio.sleep(0.01)


async def _claim_all(backend: RabbitBackend, n: int) -> list[postroom.Delivery]:
    got: list[postroom.Delivery] = []
    while len(got) < n:
        got += await backend.claim("q", n - len(got), LEASE_MS, "c")
    return got


@pytest.mark.anyio
async def test_rabbitmq_acks_out_of_order_go_out_as_one_multiple_ack(
    client: postroom.AsyncClient, url: str
) -> None:
    await client.send_many("q", [{"n": i} for i in range(10)])
    backend = client.backend
    assert isinstance(backend, RabbitBackend)
    got = await _claim_all(backend, 10)
    lane = backend._lanes["q"]
    acks: list[Any] = []
    _record(acks, lane.channel, "basic_ack")
    for d in reversed(got):  # the newest first: each above a tag still held
        assert await backend.ack([d]) == []
    await client.aclose()  # sends what still waits
    assert len(acks) == 1
    assert acks[0][1]["multiple"] is True
    async with postroom.connect_async(url) as other:
        st = await other.stats("q")
        assert (st.ready, st.in_flight) == (0, 0)
        assert await other.receive("q") == []


@pytest.mark.anyio
async def test_rabbitmq_an_ack_above_a_held_lease_goes_out_on_its_own(
    client: postroom.AsyncClient, url: str
) -> None:
    await client.send_many("q", [{"n": 0}, {"n": 1}])
    backend = client.backend
    assert isinstance(backend, RabbitBackend)
    got = await _claim_all(backend, 2)
    first, second = sorted(got, key=lambda d: d.message.body)
    lane = backend._lanes["q"]
    acks: list[Any] = []
    _record(acks, lane.channel, "basic_ack")
    assert await backend.ack([second]) == []
    await _until(lambda: acks)  # without the first one's ack
    # The channel ends without another word (as when the process dies): only
    # the message still leased goes back to the queue.
    await lane.channel.close()
    async with postroom.connect_async(url) as other:
        again: list[postroom.Delivery] = []
        with anyio.fail_after(10):
            while not again:
                again = await other.receive("q", max_messages=2)
        assert [d.id for d in again] == [first.id]
        assert await other.receive("q") == []
        await other.ack_many(again)


@pytest.mark.anyio
async def test_rabbitmq_claim_of_pushed_messages_does_no_basic_get(
    client: postroom.AsyncClient,
) -> None:
    backend = client.backend
    assert isinstance(backend, RabbitBackend)
    lane = await backend._prepare_wait("q")  # a worker waits: a consumer runs
    gets: list[Any] = []
    _record(gets, lane.channel, "basic_get")
    await client.send_many("q", [{"n": i} for i in range(3)])
    await backend.wait("q", 10)
    got = await backend.claim("q", 10, LEASE_MS, "c")
    assert got
    assert gets == []
    await backend.ack(got + await _claim_all(backend, 3 - len(got)))


@pytest.mark.anyio
async def test_rabbitmq_gauges_do_not_carry_counters_before_they_are_due(
    client: postroom.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams_module, "COUNT_FLUSH_MS", 3_600_000)
    backend = client.backend
    assert isinstance(backend, RabbitBackend)
    records: list[Any] = []
    _record(records, backend.streams, "append")
    await client.send("q", {"n": 1})
    got = await _claim_all(backend, 1)  # a new lease: a gauge goes out at once
    await backend.ack(got)
    await _until(lambda: any(a[1].get("t") == "gauge" for a, _ in records))
    await _until(lambda: not backend._dirty.is_set())  # the ack's gauge too
    kinds = [a[1].get("t") for a, _ in records]
    assert "count" not in kinds


@pytest.mark.anyio
async def test_rabbitmq_consumer_pushes_ahead_of_the_claims_without_leasing_more(
    client: postroom.AsyncClient,
) -> None:
    backend = client.backend
    assert isinstance(backend, RabbitBackend)
    assert await backend.claim("q", 4, LEASE_MS, "c") == []  # 4 free slots
    lane = backend._lanes["q"]
    await client.send_many("q", [{"n": i} for i in range(12)])
    # The broker pushes twice what the claims ask for; the pushed messages wait
    # in the lane (not leases) and the claims take them without a basic.get.
    await _until(lambda: len(lane.buffer) == 8)
    gets: list[Any] = []
    _record(gets, lane.channel, "basic_get")
    first = await backend.claim("q", 4, LEASE_MS, "c")
    assert len(first) == 4
    assert gets == []
    assert (await client.stats("q")).in_flight == 4
    await backend.ack(first + await _claim_all(backend, 8))
