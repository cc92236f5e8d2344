"""PostgreSQL outbox: a message sent in the application's transaction exists only
if that transaction commits, and wakes consumers when it does."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator

import anyio
import psycopg
import pytest

import postroom
from postroom.backends.postgres import send_in_transaction
from tests.conftest import require_service

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def schema() -> Iterator[str]:
    require_service("postgresql", "127.0.0.1", 5432)
    name = "outbox" + uuid.uuid4().hex[:10]
    yield name
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
async def client(schema: str) -> AsyncIterator[postroom.AsyncClient]:
    async with postroom.connect_async(f"{ADMIN}?schema={schema}") as c:
        yield c


@pytest.fixture
async def conn() -> AsyncIterator[psycopg.AsyncConnection[object]]:
    async with await psycopg.AsyncConnection.connect(ADMIN) as c:
        await c.execute("CREATE TEMP TABLE orders (n integer)")
        await c.commit()
        yield c


@pytest.mark.anyio
async def test_postgres_outbox_message_exists_only_after_commit(
    client: postroom.AsyncClient, conn: psycopg.AsyncConnection[object]
) -> None:
    async with conn.transaction():
        await conn.execute("INSERT INTO orders VALUES (1)")
        mid = await send_in_transaction(client, conn, "orders", {"n": 1})
        assert await client.peek("orders") == []  # other sessions do not see it
    [msg] = await client.peek("orders")
    assert (msg.id, msg.json()) == (mid, {"n": 1})

    async with conn.transaction():
        await conn.execute("INSERT INTO orders VALUES (2)")
        await send_in_transaction(client, conn, "orders", {"n": 2})
        raise psycopg.Rollback()
    assert [m.id for m in await client.peek("orders")] == [mid]
    cur = await conn.execute("SELECT n FROM orders")
    assert await cur.fetchall() == [(1,)]


@pytest.mark.anyio
async def test_postgres_outbox_commit_wakes_a_waiting_consumer(
    client: postroom.AsyncClient, conn: psycopg.AsyncConnection[object]
) -> None:
    await client.declare_queue("orders")
    got: list[postroom.Delivery] = []

    async def consume() -> None:
        got.extend(await client.receive("orders", wait=30.0))

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        async with conn.transaction():
            mid = await send_in_transaction(client, conn, "orders", {"n": 1})
            await anyio.sleep(0.3)
            assert got == []  # not visible before the commit
        committed = time.monotonic()
    assert [d.id for d in got] == [mid]
    # Nothing was due: only the NOTIFY delivered on commit ends the wait early.
    assert time.monotonic() - committed < 10


@pytest.mark.anyio
async def test_postgres_outbox_dedup_and_wrong_backend(
    client: postroom.AsyncClient, conn: psycopg.AsyncConnection[object]
) -> None:
    async with conn.transaction():
        first = await send_in_transaction(client, conn, "orders", {}, dedup_key="k")
        again = await send_in_transaction(client, conn, "orders", {}, dedup_key="k")
    assert first == again
    assert len(await client.peek("orders")) == 1
    async with postroom.connect_async("memory://outbox") as memory:
        with pytest.raises(postroom.NotSupported):
            await send_in_transaction(memory, conn, "orders", {})
