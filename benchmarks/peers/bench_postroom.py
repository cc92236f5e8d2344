"""postroom on Redis: the App run by ``postroom worker``, and the producer side."""

from __future__ import annotations

import asyncio
import os
import time

from _probe import hit

import postroom

NAME = "postroom"
URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/1")
QUEUE = "bench"

app = postroom.App(URL)


@app.handler(QUEUE, concurrency=100)
async def job(body: dict[str, float]) -> None:
    """The no-op job (fails in the failing workload)."""
    hit(body["t"], fail=os.environ.get("BENCH_MODE") == "fail")


def worker_cmd(python: str) -> list[str]:
    """One worker process."""
    exe = os.path.join(os.path.dirname(python), "postroom")
    return [exe, "worker", "bench_postroom:app", "--grace", "1", "--log-level", "ERROR"]


async def _declare(c: postroom.AsyncClient) -> None:
    await c.declare_queue(
        QUEUE, max_attempts=4, backoff=postroom.Backoff(initial=0.0, jitter=False)
    )


def enqueue_one(n: int) -> float:
    """Send ``n`` messages one by one; seconds taken."""

    async def main() -> float:
        async with postroom.connect_async(URL) as c:
            await _declare(c)
            start = time.perf_counter()
            for _ in range(n):
                await c.send(QUEUE, {"t": time.time()})
            return time.perf_counter() - start

    return asyncio.run(main())


def enqueue_bulk(n: int, failing: bool = False) -> float:
    """Send ``n`` messages in one ``send_many``; seconds taken.

    (The worker's ``BENCH_MODE`` makes the job fail, so ``failing`` changes nothing.)
    """

    async def main() -> float:
        async with postroom.connect_async(URL) as c:
            await _declare(c)
            start = time.perf_counter()
            now = time.time()
            await c.send_many(QUEUE, [{"t": now} for _ in range(n)])
            return time.perf_counter() - start

    return asyncio.run(main())


def warmup() -> None:
    """Send the warm-up job."""

    async def main() -> None:
        async with postroom.connect_async(URL) as c:
            await _declare(c)
            await c.send(QUEUE, {"t": -1.0})

    asyncio.run(main())


def send_paced(times: list[float]) -> None:
    """Send one message at each wall-clock time in ``times``."""

    async def main() -> None:
        async with postroom.connect_async(URL) as c:
            await _declare(c)
            for at in times:
                delay = at - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await c.send(QUEUE, {"t": time.time()})

    asyncio.run(main())


def dead_count() -> int:
    """Messages in the dead letter store."""

    async def main() -> int:
        async with postroom.connect_async(URL) as c:
            return (await c.stats(QUEUE)).dead

    return asyncio.run(main())
