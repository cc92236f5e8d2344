"""Count postroom's round trips (and transactions) per message, per backend.

Usage: ``python benchmarks/peers/roundtrips.py [redis|sqlite|postgres|rabbitmq ...]``
(Redis on 127.0.0.1:6379 db 7, flushed; PostgreSQL ``test`` on 127.0.0.1:5432,
schema ``roundtrips``; SQLite in a temporary folder). Sends 20,000
messages one by one and in one ``send_many``, then drains them with a
``postroom.Worker`` with the defaults (an ``async def`` handler without a
``concurrency`` argument), in this process, so that its calls are counted:

- Redis: every write of commands to a socket is one round trip (each script or
  ``MULTI``/``EXEC`` in it is atomic; no transactions are counted);
- SQLite: every operation handed to the backend's thread is one round trip (a
  thread hop), every ``COMMIT`` one transaction (the executor commits operations
  that queue up together in one);
- PostgreSQL: every statement sent on its own is one round trip, a pipeline one
  round trip in all; every statement outside an explicit transaction commits on
  its own;
- RabbitMQ (127.0.0.1:5672, prefix ``roundtrips``): every AMQP method that waits
  for the broker's answer (``basic.get``, ``queue.declare``, ...) is one round
  trip; every publish (messages, and records of postroom's streams) is counted
  apart, as ``publishes``: each waits for the broker's confirm, concurrent ones
  together (a ``send_many`` is one wait for all of its confirms).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import postroom
from postroom.runtime.worker import Worker

N = int(os.environ.get("ROUNDTRIPS_N", "20000"))  # messages per measurement
COUNTS = {"round trips": 0, "transactions": 0, "publishes": 0}


def count(kind: str, n: int = 1) -> None:
    COUNTS[kind] += n


def instrument_redis() -> None:
    from redis.asyncio.connection import AbstractConnection

    from postroom.backends.redis import _scripts

    original = AbstractConnection.send_packed_command

    async def counting(self: Any, command: Any, check_health: bool = True) -> None:
        count("round trips")
        await original(self, command, check_health)

    AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
    original_write = _scripts._write  # postroom's own direct writes

    async def counting_write(conn: Any, chunks: list[bytes]) -> None:
        count("round trips")
        await original_write(conn, chunks)

    _scripts._write = counting_write


def instrument_sqlite() -> None:
    from postroom.backends.sqlite import _backend, _executor

    original_run = _executor.Executor.run

    async def counting_run(self: Any, fn: Any, *args: Any, durable: bool = True) -> Any:
        count("round trips")
        return await original_run(self, fn, *args, durable=durable)

    _executor.Executor.run = counting_run  # type: ignore[method-assign]
    original_open = _backend.open_connection

    def tracing_open(*args: Any, **kwargs: Any) -> Any:
        conn = original_open(*args, **kwargs)
        conn.set_trace_callback(
            lambda sql: count("transactions") if sql.strip() == "COMMIT" else None
        )
        return conn

    _backend.open_connection = tracing_open


def instrument_postgres() -> None:
    import psycopg

    in_pipeline: set[int] = set()
    original_execute = psycopg.AsyncConnection.execute
    original_pipeline = psycopg.AsyncConnection.pipeline

    async def counting_execute(self: Any, *args: Any, **kwargs: Any) -> Any:
        pipelined = id(self) in in_pipeline
        if not pipelined:
            count("round trips")
        if pipelined or not self.info.transaction_status:  # autocommits
            count("transactions")
        return await original_execute(self, *args, **kwargs)

    @contextlib.asynccontextmanager
    async def counting_pipeline(self: Any) -> AsyncIterator[Any]:
        count("round trips")
        in_pipeline.add(id(self))
        try:
            async with original_pipeline(self) as pipe:
                yield pipe
        finally:
            in_pipeline.discard(id(self))

    psycopg.AsyncConnection.execute = counting_execute  # type: ignore[method-assign]
    psycopg.AsyncConnection.pipeline = counting_pipeline  # type: ignore[method-assign,assignment]


def instrument_rabbitmq() -> None:
    import aiormq

    original_rpc = aiormq.Channel.rpc
    original_publish = aiormq.Channel.basic_publish

    async def counting_rpc(self: Any, *args: Any, **kwargs: Any) -> Any:
        count("round trips")
        return await original_rpc(self, *args, **kwargs)

    async def counting_publish(self: Any, *args: Any, **kwargs: Any) -> Any:
        count("publishes")
        return await original_publish(self, *args, **kwargs)

    aiormq.Channel.rpc = counting_rpc  # type: ignore[method-assign]
    aiormq.Channel.basic_publish = counting_publish  # type: ignore[method-assign]


async def measure(label: str, body: Callable[[], Awaitable[Any]]) -> None:
    """Run ``body`` and print its round trips and transactions per message."""
    for key in COUNTS:
        COUNTS[key] = 0
    start = time.perf_counter()
    await body()
    took = time.perf_counter() - start
    shown = {k: v for k, v in COUNTS.items() if v or k != "publishes"}
    per = "  ".join(f"{v / N:7.4f} {k}/msg" for k, v in shown.items())
    print(f"  {label:26} {per}  {N / took:9,.0f} msg/s")


async def run(url: str) -> None:
    """Enqueue one by one, in bulk, then drain with the worker's defaults."""
    app = postroom.App(url)
    done = 0

    @app.handler("rt")
    async def job(body: dict[str, int]) -> None:
        nonlocal done
        done += 1
        if done == N:
            worker.stop()

    worker = Worker(app, grace=1)
    async with postroom.connect_async(url) as c:
        await c.declare_queue("rt")
        await c.purge("rt")

        async def one_by_one() -> None:
            for i in range(N):
                await c.send("rt", {"n": i})

        async def bulk() -> None:
            await c.send_many("rt", [{"n": i} for i in range(N)])

        await measure("send, one by one", one_by_one)
        await c.purge("rt")
        await measure("send_many (one call)", bulk)
        await measure("drain (Worker defaults)", worker.run)
        await c.delete_queue("rt")


def main() -> None:
    """Count on the backends named on the command line (default: all three)."""
    names = sys.argv[1:] or ["redis", "sqlite", "postgres"]
    for name in names:
        print(name)
        if name == "redis":
            instrument_redis()
            asyncio.run(run("redis://127.0.0.1:6379/7"))
        elif name == "sqlite":
            instrument_sqlite()
            with tempfile.TemporaryDirectory() as folder:
                asyncio.run(run(f"sqlite:///{folder}/rt.db"))
        elif name == "rabbitmq":
            instrument_rabbitmq()
            asyncio.run(run("amqp://guest:guest@127.0.0.1:5672/?prefix=roundtrips"))
        else:
            instrument_postgres()
            url = "postgresql://postgres@127.0.0.1:5432/test?schema=roundtrips"
            asyncio.run(run(url))


if __name__ == "__main__":
    main()
