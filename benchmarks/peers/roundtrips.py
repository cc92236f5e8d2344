"""Count postroom's Redis round trips per message (sends to the server).

Usage: ``python benchmarks/peers/roundtrips.py`` (Redis on 127.0.0.1:6379, db 7,
flushed). Every write of a command or pipeline to a Redis socket is one round
trip; the worker runs in this process so its round trips are counted too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio.connection import AbstractConnection

import postroom
from postroom.backends.redis import _scripts
from postroom.runtime.worker import Worker

URL = "redis://127.0.0.1:6379/7"
N = 20_000
_sent = 0
_original = AbstractConnection.send_packed_command


async def _counting(self: Any, command: Any, check_health: bool = True) -> None:
    global _sent
    _sent += 1
    await _original(self, command, check_health)


AbstractConnection.send_packed_command = _counting  # type: ignore[method-assign]

# postroom's own calls write to the socket directly (``_scripts._write``).
_original_write = _scripts._write


async def _counting_write(conn: Any, chunks: list[bytes]) -> None:
    global _sent
    _sent += 1
    await _original_write(conn, chunks)


_scripts._write = _counting_write


async def measure(label: str, body: Any) -> None:
    """Run ``body`` and print its round trips per message."""
    global _sent
    _sent = 0
    start = time.perf_counter()
    await body()
    took = time.perf_counter() - start
    print(f"{label:28} {_sent / N:7.4f} round trips/message  {N / took:9,.0f} msg/s")


async def main() -> None:
    """Enqueue one by one, in bulk, then drain with the worker."""
    app = postroom.App(URL)
    done = 0

    @app.handler("rt", concurrency=100)
    async def job(body: dict[str, int]) -> None:
        nonlocal done
        done += 1
        if done == N:
            worker.stop()

    worker = Worker(app, grace=1)
    async with postroom.connect_async(URL) as c:
        await c.backend.redis.flushdb()  # type: ignore[attr-defined]
        await c.declare_queue("rt")

        async def one_by_one() -> None:
            for i in range(N):
                await c.send("rt", {"n": i})

        async def bulk() -> None:
            await c.send_many("rt", [{"n": i} for i in range(N)])

        await measure("send, one by one", one_by_one)
        await c.purge("rt")
        await measure("send_many (one call)", bulk)
        await measure("drain by postroom.Worker", worker.run)
        await c.backend.redis.flushdb()  # type: ignore[attr-defined]


if __name__ == "__main__":
    asyncio.run(main())
