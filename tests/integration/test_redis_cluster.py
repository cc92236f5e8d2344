"""Redis Cluster: queues spread over the shards, and a queue's slot moved to another
shard under its consumers (the contract suite runs on the cluster as well, as the
``redis-cluster`` backend)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import pytest
import redis

import postroom
from postroom.backends.redis import RedisBackend
from tests.conftest import require_service
from tests.contract.conftest import (
    _CLUSTER_PREFIXES,
    _redis_cleanup,  # noqa: F401 - autouse: drop keys
)
from tests.redis_cluster import cluster_port, cluster_ports

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client() -> AsyncIterator[postroom.AsyncClient]:
    require_service("redis", "127.0.0.1", 6379)
    prefix = "rc" + uuid.uuid4().hex[:10]
    _CLUSTER_PREFIXES.append(prefix)  # the contract conftest deletes its keys
    url = f"redis://127.0.0.1:{cluster_port()}/0?prefix={prefix}"
    async with postroom.connect_async(url) as c:
        yield c


def _node_ids() -> dict[int, str]:
    """Port -> cluster node id."""
    ids = {}
    for port in cluster_ports():
        with redis.Redis(port=port) as r:
            ids[port] = r.execute_command("CLUSTER MYID").decode()
    return ids


def _owner(slot: int) -> int:
    with redis.Redis(port=cluster_ports()[0]) as r:
        for start, end, primary, *_ in r.execute_command("CLUSTER SLOTS"):
            if start <= slot <= end:
                return int(primary[1])
    raise AssertionError(f"slot {slot} is not served")


def _move_slot(slot: int) -> int:
    """Migrate ``slot`` and its keys to another node, as `redis-cli --cluster
    reshard` does; return the new owner's port."""
    ids = _node_ids()
    src = _owner(slot)
    dst = next(p for p in ids if p != src)
    with redis.Redis(port=src) as s, redis.Redis(port=dst) as d:
        d.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[src])
        s.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[dst])
        while keys := s.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            s.execute_command(
                "MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", *keys
            )  # fmt: skip
        for port in ids:
            with redis.Redis(port=port) as r:
                r.execute_command("CLUSTER SETSLOT", slot, "NODE", ids[dst])
    return dst


async def test_redis_cluster_queues_spread_over_the_shards(
    client: postroom.AsyncClient,
) -> None:
    backend = client.backend
    assert isinstance(backend, RedisBackend)
    await client.connect()
    assert backend.cluster
    queues = [f"q{i}" for i in range(12)]
    nodes = {
        backend.redis.get_node_from_key(backend.script_keys(q)[0]).port for q in queues
    }
    assert len(nodes) >= 2, "twelve queues all landed on one shard"
    for q in queues:
        await client.declare_queue(q)
        await client.send(q, q)
    for q in queues:
        [d] = await client.receive(q, wait=2.0)
        assert d.message.json() == q
        await client.ack(d)


async def test_redis_cluster_slot_moved_under_consumers(
    client: postroom.AsyncClient,
) -> None:
    """Leases, acks, sends and a blocked wait all survive the queue's slot moving
    to another shard (MOVED redirections followed, slot map read again)."""
    backend = client.backend
    assert isinstance(backend, RedisBackend)
    await client.declare_queue("moving")
    await client.send_many("moving", [1, 2, 3])
    held = await client.receive("moving", max_messages=3)
    assert len(held) == 3
    tag = backend.script_keys("moving")[0]
    slot = backend.redis.keyslot(tag)
    got: list[postroom.Delivery] = []

    async def wait_for_one() -> None:
        got.extend(await client.receive("moving", wait=10.0))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_for_one)
        await anyio.sleep(0.3)  # the consumer is blocked on the old shard
        new_owner = await anyio.to_thread.run_sync(_move_slot, slot)
        url = f"redis://127.0.0.1:{new_owner}/0?prefix={backend.prefix}"
        async with postroom.connect_async(url) as other:
            await other.send("moving", "after the move")
    assert [d.message.json() for d in got] == ["after the move"]
    assert await client.ack_many([*held, *got]) == []
    await client.send("moving", "again")
    [d] = await client.receive("moving", wait=2.0)
    assert d.message.json() == "again"
    await client.ack(d)
    assert (await client.stats("moving")).in_flight == 0
