"""Taskiq with taskiq-redis: ``ListQueueBroker``, ``kiq``, retry middleware."""

from __future__ import annotations

import asyncio
import os
import time

from _probe import ahit
from taskiq import SimpleRetryMiddleware
from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

NAME = "Taskiq"
URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/6")

backend: RedisAsyncResultBackend = RedisAsyncResultBackend(URL)
broker = ListQueueBroker(URL, queue_name="bench").with_middlewares(
    SimpleRetryMiddleware(default_retry_count=4)
)
if os.environ.get("BENCH_MODE") == "fail":
    # Failures are kept only in a result backend: the failing workload uses one.
    broker = broker.with_result_backend(backend)
_sent: list[str] = []


@broker.task
async def job(sent_at: float) -> None:
    """The job: one awaited INCR."""
    await ahit(sent_at)


@broker.task(retry_on_error=True, max_retries=4)
async def failing(sent_at: float) -> None:
    """Fails every time; max_retries=4 counts runs, so this is 3 retries."""
    await ahit(sent_at, fail=True)


# Tuned: 200 jobs at once per process, 100 prefetched.
TUNED = ["--max-async-tasks", "200", "--max-prefetch", "100"]


def worker_cmd(python: str, tuned: bool) -> list[str]:
    """``taskiq worker`` with no flags (2 processes, 100 async tasks each), or
    tuned."""
    cmd = [python, "-m", "taskiq", "worker", "bench_taskiq:broker"]
    return cmd + (TUNED if tuned else [])


def enqueue_one(n: int) -> float:
    """``kiq`` n times, awaited one by one."""

    async def main() -> float:
        await broker.startup()
        start = time.perf_counter()
        for _ in range(n):
            await job.kiq(time.time())
        took = time.perf_counter() - start
        await broker.shutdown()
        return took

    return asyncio.run(main())


def enqueue_bulk(n: int, failing: bool = False) -> float:
    """n ``kiq`` calls at once (Taskiq has no batch call), 50 in flight."""

    async def main() -> float:
        await broker.startup()
        task = globals()["failing"] if failing else job
        _sent.clear()
        start = time.perf_counter()
        now = time.time()
        for i in range(0, n, 50):
            k = min(50, n - i)
            sent = await asyncio.gather(*(task.kiq(now) for _ in range(k)))
            _sent.extend(t.task_id for t in sent)
        took = time.perf_counter() - start
        await broker.shutdown()
        return took

    return asyncio.run(main())


def warmup() -> None:
    """Send the warm-up job."""

    async def main() -> None:
        await broker.startup()
        await job.kiq(-1.0)
        await broker.shutdown()

    asyncio.run(main())


def send_paced(times: list[float]) -> None:
    """Send one job at each wall-clock time."""

    async def main() -> None:
        await broker.startup()
        for at in times:
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await job.kiq(time.time())
        await broker.shutdown()

    asyncio.run(main())


def dead_count() -> int:
    """Results of the failing jobs sent by enqueue_bulk that are errors."""

    async def main() -> int:
        n = 0
        for task_id in _sent:
            if await backend.is_result_ready(task_id):
                n += (await backend.get_result(task_id)).is_err
        await backend.shutdown()
        return n

    return asyncio.run(main())
