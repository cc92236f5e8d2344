"""Huey with its Redis storage: ``@huey.task``, calling the task enqueues it."""

from __future__ import annotations

import os
import time

from _probe import hit
from huey import RedisHuey

NAME = "Huey"
URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/11")

huey = RedisHuey("bench", url=URL)


@huey.task()
def job(sent_at: float) -> None:
    """The job: one INCR."""
    hit(sent_at)


@huey.task(retries=3, retry_delay=0)
def failing(sent_at: float) -> None:
    """Fails every time; three retries at once, then its error is the result."""
    hit(sent_at, fail=True)


# Tuned: 16 worker threads (the job waits on I/O); the default is one.
TUNED = ["-w", "16"]


def worker_cmd(python: str, tuned: bool) -> list[str]:
    """``huey_consumer`` with no flags (one worker thread), or tuned."""
    cmd = [python, "-m", "huey.bin.huey_consumer", "bench_huey.huey"]
    return cmd + (TUNED if tuned else [])


def enqueue_one(n: int) -> float:
    """Call the task n times (each call is one LPUSH)."""
    start = time.perf_counter()
    for _ in range(n):
        job(time.time())
    return time.perf_counter() - start


def enqueue_bulk(n: int, failing: bool = False) -> float:
    """n calls (Huey has no batch enqueue)."""
    task = globals()["failing"] if failing else job
    start = time.perf_counter()
    now = time.time()
    for _ in range(n):
        task(now)
    return time.perf_counter() - start


def warmup() -> None:
    """Send the warm-up job."""
    job(-1.0)


def send_paced(times: list[float]) -> None:
    """Send one job at each wall-clock time."""
    for at in times:
        delay = at - time.time()
        if delay > 0:
            time.sleep(delay)
        job(time.time())


def dead_count() -> int:
    """Tasks whose error is stored as their result."""
    return int(huey.storage.result_store_size())
