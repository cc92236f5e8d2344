"""PostgreSQL backend specifics: URL settings, schema creation, SKIP LOCKED claims,
error translation and the LISTEN connection's recovery."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import anyio
import psycopg
import pytest

import postroom
from postroom.backends.base import open_backend
from postroom.backends.postgres import PostgresBackend, PostgresSettings
from tests.conftest import require_service

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def schema() -> Iterator[str]:
    require_service("postgresql", "127.0.0.1", 5432)
    name = "pg" + uuid.uuid4().hex[:12]
    yield name
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
async def client(schema: str) -> AsyncIterator[postroom.AsyncClient]:
    async with postroom.connect_async(f"{ADMIN}?schema={schema}") as c:
        yield c


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_postgres_url_settings_are_parsed_and_kept_out_of_libpq() -> None:
    s = PostgresSettings.from_url(
        "postgres://u:secret@db.example:6543/app?schema=jobs&pool_max=4"
        "&sslmode=require&pool_timeout=2.5"
    )
    assert (s.schema, s.pool_min, s.pool_max, s.pool_timeout) == ("jobs", 1, 4, 2.5)
    assert s.conninfo == "postgresql://u:secret@db.example:6543/app?sslmode=require"
    assert "secret" not in s.where
    # libpq options keep their spaces (as %20: libpq does not read "+" as a space)
    opts = PostgresSettings.from_url(
        "postgresql:///db?host=/run/postgresql&options=-c%20lock_timeout%3D5s"
    )
    assert opts.conninfo == (
        "postgresql:///db?host=%2Frun%2Fpostgresql&options=-c%20lock_timeout%3D5s"
    )
    assert isinstance(open_backend("postgres://localhost/db"), PostgresBackend)
    assert isinstance(open_backend("postgresql://localhost/db"), PostgresBackend)


@pytest.mark.parametrize(
    "query",
    ["schema=a-b", "schema=1abc", "schema=" + "x" * 49, "pool_max=0", "pool_min=x"],
)
def test_postgres_bad_url_settings_raise_configuration_error(query: str) -> None:
    with pytest.raises(postroom.ConfigurationError):
        PostgresSettings.from_url(f"postgresql://localhost/db?{query}")


@pytest.mark.anyio
async def test_postgres_unreachable_server_raises_backend_error() -> None:
    backend = open_backend("postgresql://postgres@127.0.0.1:1/test?connect_timeout=2")
    with pytest.raises(postroom.BackendError, match=re.escape("127.0.0.1:1")):
        await backend.connect()
    await backend.aclose()


@pytest.mark.anyio
async def test_postgres_first_connections_racing_create_the_schema_once(
    schema: str,
) -> None:
    backends = [open_backend(f"{ADMIN}?schema={schema}") for _ in range(4)]
    try:
        async with anyio.create_task_group() as tg:
            for b in backends:
                tg.start_soon(b.connect)
        assert await backends[0].list_queues() == []
    finally:
        for b in backends:
            await b.aclose()


@pytest.mark.anyio
async def test_postgres_schemas_are_isolated(
    client: postroom.AsyncClient, schema: str
) -> None:
    await client.send("jobs", {"n": 1})
    other = schema + "b"
    try:
        async with postroom.connect_async(f"{ADMIN}?schema={other}") as c2:
            assert await c2.backend.list_queues() == []
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{other}" CASCADE')


@pytest.mark.anyio
async def test_postgres_claim_skips_rows_locked_by_another_transaction(
    client: postroom.AsyncClient, schema: str
) -> None:
    first, second = await client.send_many("jobs", [{"n": 1}, {"n": 2}])
    async with await psycopg.AsyncConnection.connect(ADMIN) as other:
        # Another consumer's claim is in progress on the first message.
        await other.execute(
            f'SELECT 1 FROM "{schema}".messages WHERE id = %s FOR UPDATE', (first,)
        )
        with anyio.fail_after(10):  # a blocking claim would wait for the lock
            got = await client.receive("jobs", max_messages=2)
        assert [d.id for d in got] == [second]
        await other.rollback()
    [again] = await client.receive("jobs")
    assert again.id == first


@pytest.mark.anyio
async def test_postgres_wait_recovers_when_the_listen_connection_is_killed(
    client: postroom.AsyncClient, schema: str
) -> None:
    await client.declare_queue("jobs")
    assert await client.receive("jobs", wait=0.05) == []  # starts the listener
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s",
            (f'LISTEN "postroom_{schema}"',),
        )
    assert await client.receive("jobs", wait=0.2) == []  # reconnects
    async with anyio.create_task_group() as tg:

        async def send_later() -> None:
            await anyio.sleep(0.5)
            await client.send("jobs", {"n": 1})

        tg.start_soon(send_later)
        start = time.monotonic()
        got = await client.receive("jobs", wait=30.0)
    assert len(got) == 1
    # Empty queue, nothing due: only a notification ends the wait this early.
    assert time.monotonic() - start < 10


@pytest.mark.anyio
async def test_postgres_concurrent_sends_of_one_dedup_key_store_one_message(
    schema: str,
) -> None:
    url = f"{ADMIN}?schema={schema}&options=-csynchronous_commit%3Doff"
    clients = [postroom.connect_async(url) for _ in range(6)]
    ids: list[str] = []
    try:
        for c in clients:
            await c.connect()
        await clients[0].declare_queue("jobs")

        async def send(c: postroom.AsyncClient, n: int) -> None:
            ids.append(await c.send("jobs", {"n": n}, dedup_key="same"))

        async with anyio.create_task_group() as tg:
            for n, c in enumerate(clients):
                tg.start_soon(send, c, n)
        assert len(set(ids)) == 1
        assert [m.id for m in await clients[0].peek("jobs")] == ids[:1]
    finally:
        for c in clients:
            await c.aclose()


@pytest.mark.anyio
async def test_postgres_killed_connections_fail_one_operation_then_recover(
    schema: str,
) -> None:
    app = "pgkill" + uuid.uuid4().hex[:8]
    url = f"{ADMIN}?schema={schema}&application_name={app}&pool_min=3"
    async with postroom.connect_async(url) as c:
        await c.send("jobs", {"n": 1})
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (app,),
            )
        failures = 0
        for n in range(2, 5):
            try:
                await c.send("jobs", {"n": n})
            except postroom.BackendError:
                failures += 1
        # The first operation on a dead connection fails; it makes the pool
        # replace every dead one, so the next ones succeed.
        assert failures <= 1
        assert len(await c.peek("jobs")) == 1 + 3 - failures
