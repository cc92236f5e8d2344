"""arq: ``enqueue_job`` on an ``ArqRedis`` pool, ``arq`` worker with settings."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import redis
from _probe import JobFailed, ahit
from arq import Retry, create_pool
from arq.connections import RedisSettings
from arq.jobs import deserialize_result

NAME = "arq"
URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/5")
SETTINGS = RedisSettings.from_dsn(URL)


async def job(ctx: dict[str, Any], sent_at: float) -> None:
    """The job: one awaited INCR."""
    await ahit(sent_at)


async def failing(ctx: dict[str, Any], sent_at: float) -> None:
    """Fails every time; arq retries on ``Retry`` up to ``max_tries``."""
    try:
        await ahit(sent_at, fail=True)
    except JobFailed as exc:
        raise Retry(defer=0) from exc


class WorkerSettings:
    """The arq worker: defaults (max_jobs=10, poll_delay=0.5 s), 4 tries."""

    functions = [job, failing]
    redis_settings = SETTINGS
    max_tries = 4


class TunedSettings(WorkerSettings):
    """Tuned: 100 jobs at once, polling every 10 ms."""

    max_jobs = 100
    poll_delay = 0.01


def worker_cmd(python: str, tuned: bool) -> list[str]:
    """One ``arq`` worker process (arq has no process option)."""
    settings = "TunedSettings" if tuned else "WorkerSettings"
    return [python, "-m", "arq", f"bench_arq.{settings}"]


def enqueue_one(n: int) -> float:
    """``enqueue_job`` n times, awaited one by one."""

    async def main() -> float:
        pool = await create_pool(SETTINGS)
        start = time.perf_counter()
        for _ in range(n):
            await pool.enqueue_job("job", time.time())
        took = time.perf_counter() - start
        await pool.aclose()
        return took

    return asyncio.run(main())


def enqueue_bulk(n: int, failing: bool = False) -> float:
    """n ``enqueue_job`` calls at once (arq has no batch call), 50 in flight."""

    async def main() -> float:
        pool = await create_pool(SETTINGS)
        name = "failing" if failing else "job"
        start = time.perf_counter()
        now = time.time()
        for i in range(0, n, 50):
            k = min(50, n - i)
            await asyncio.gather(*(pool.enqueue_job(name, now) for _ in range(k)))
        took = time.perf_counter() - start
        await pool.aclose()
        return took

    return asyncio.run(main())


def warmup() -> None:
    """Send the warm-up job."""

    async def main() -> None:
        pool = await create_pool(SETTINGS)
        await pool.enqueue_job("job", -1.0)
        await pool.aclose()

    asyncio.run(main())


def send_paced(times: list[float]) -> None:
    """Send one job at each wall-clock time."""

    async def main() -> None:
        pool = await create_pool(SETTINGS)
        for at in times:
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await pool.enqueue_job("job", time.time())
        await pool.aclose()

    asyncio.run(main())


def dead_count() -> int:
    """Stored job results that are failures."""
    with redis.Redis.from_url(URL) as r:
        keys = list(r.scan_iter(match="arq:result:*", count=1000))
        values = r.mget(keys) if keys else []
    return sum(1 for v in values if v and not deserialize_result(v).success)
