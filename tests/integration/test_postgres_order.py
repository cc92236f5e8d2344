"""PostgreSQL specifics of groups, priorities and rate limits: a schema made before
them is migrated on connect, and sends racing the acks of their group's head never
leave a group stuck nor two of its messages in flight."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace

import anyio
import psycopg
import pytest

import postroom
from postroom.backends.postgres import PostgresBackend, _send
from tests.conftest import require_service

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"

# What connect() added to a schema made before groups, priorities and rate limits.
_BEFORE = """
DROP TABLE "{s}".rates;
DROP INDEX "{s}".messages_ready;
DROP INDEX "{s}".messages_group;
ALTER TABLE "{s}".messages DROP COLUMN grp, DROP COLUMN priority, DROP COLUMN blocked;
ALTER TABLE "{s}".dead DROP COLUMN grp, DROP COLUMN priority;
CREATE INDEX messages_visible ON "{s}".messages (queue, due, seq) WHERE token IS NULL;
"""


@pytest.fixture
def schema() -> Iterator[str]:
    require_service("postgresql", "127.0.0.1", 5432)
    name = "pg" + uuid.uuid4().hex[:12]
    yield name
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_postgres_schema_from_before_groups_is_migrated_on_connect(
    schema: str,
) -> None:
    url = f"{ADMIN}?schema={schema}"
    async with postroom.connect_async(url) as c:
        old = await c.send("jobs", {"n": 1})
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(_BEFORE.format(s=schema).encode())
    async with postroom.connect_async(url) as c:
        await c.declare_queue("jobs", rate_limit=100.0)
        late = await c.send("jobs", {"n": 2}, priority=9)
        grouped = await c.send_many("jobs", [3, 4], group="g")
        first = await c.receive("jobs", max_messages=10)
        assert [d.id for d in first] == [late, old, grouped[0]]
        await c.ack_many(first)
        [last] = await c.receive("jobs", max_messages=10)
        assert last.id == grouped[1] and last.message.group == "g"


@pytest.mark.anyio
async def test_postgres_sends_racing_acks_of_the_group_head_keep_the_group_moving(
    schema: str,
) -> None:
    url = f"{ADMIN}?schema={schema}"
    n = 60
    sent: list[str] = []
    got: list[str] = []
    async with (
        postroom.connect_async(url) as producer,
        postroom.connect_async(url) as consumer,
    ):
        await producer.declare_queue("jobs")

        async def produce() -> None:
            for i in range(n):
                sent.append(await producer.send("jobs", i, group="g"))

        async def consume() -> None:
            while len(got) < n:
                batch = await consumer.receive("jobs", max_messages=10, wait=5)
                assert len(batch) <= 1  # one message of a group in flight
                for d in batch:
                    got.append(d.id)
                    await consumer.ack(d)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                tg.start_soon(produce)
                tg.start_soon(consume)
    assert got == sent


@pytest.mark.anyio
async def test_postgres_purge_racing_a_send_into_a_group_leaves_nothing_blocked(
    schema: str,
) -> None:
    """A send into a group decides, before it commits, which message heads the
    group; a purge that deleted that head in between used to leave the new
    message blocked behind nothing, and its group stuck, for good."""
    url = f"{ADMIN}?schema={schema}"
    async with postroom.connect_async(url) as c:
        await c.send("jobs", 1, group="g")  # the head the racing send sees
        backend = c.backend
        assert isinstance(backend, PostgresBackend)
        ready = await c.prepare_send("jobs", 2, group="g")
        purged: list[int] = []

        async def purge() -> None:
            purged.append(await c.purge("jobs"))

        async with (
            await psycopg.AsyncConnection.connect(ADMIN, autocommit=True) as conn,
            anyio.create_task_group() as tg,
            conn.transaction(),  # ends first: the send commits, then the purge ends
        ):
            # The send's statements, its commit held back.
            await _send.insert(conn, backend.sql, "jobs", [ready.message])
            tg.start_soon(purge)
            await anyio.sleep(0.5)
            assert not purged  # the purge waits for the send to commit
        assert purged == [2]
        fresh = await c.send("jobs", 3, group="g")
        got = await c.receive("jobs", max_messages=10, wait=2)
        assert [d.id for d in got] == [fresh]


@pytest.mark.anyio
@pytest.mark.parametrize("outcome", ["ack", "settle", "reject"])
async def test_postgres_a_delivery_rebuilt_without_its_group_still_frees_the_group(
    schema: str, outcome: str
) -> None:
    """The HTTP API and the SQS endpoint settle deliveries rebuilt from a receipt,
    which do not know their group: the group's next message goes all the same."""
    url = f"{ADMIN}?schema={schema}"
    async with postroom.connect_async(url) as c:
        first, second = await c.send_many("jobs", [1, 2], group="g")
        [got] = await c.receive("jobs", max_messages=10)
        assert got.id == first
        bare = replace(got, message=replace(got.message, group=None))
        if outcome == "ack":
            await c.ack(bare)
        elif outcome == "settle":
            await c.settle([bare], [])
        else:
            await c.reject(bare)
        [after] = await c.receive("jobs", max_messages=10, wait=2)
        assert after.id == second
