"""Celery with the Redis broker (and Redis result backend for failures)."""

from __future__ import annotations

import os
import time

import redis
from _probe import JobFailed, hit
from celery import Celery, Task, group

NAME = "Celery"
URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/2")

app = Celery("bench_celery", broker=URL, backend=URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
)


@app.task
def job(sent_at: float) -> None:
    """The job: one INCR."""
    hit(sent_at)


@app.task(bind=True, max_retries=3, ignore_result=False)
def failing(self: Task, sent_at: float) -> None:
    """Fails every time; retried at once three times, then stored as FAILURE."""
    try:
        hit(sent_at, fail=True)
    except JobFailed as exc:
        raise self.retry(exc=exc, countdown=0) from exc


# Tuned: a pool of 16 threads (the job waits on I/O), no cluster chatter.
TUNED = [
    "-P", "threads", "-c", "16", "--without-gossip", "--without-mingle",
    "--without-heartbeat",
]  # fmt: skip


def worker_cmd(python: str, tuned: bool) -> list[str]:
    """``celery worker`` with no flags (prefork, one process per CPU), or tuned."""
    cmd = [python, "-m", "celery", "-A", "bench_celery", "worker"]
    return cmd + (TUNED if tuned else [])


def enqueue_one(n: int) -> float:
    """``delay()`` n times."""
    start = time.perf_counter()
    for _ in range(n):
        job.delay(time.time())
    return time.perf_counter() - start


def enqueue_bulk(n: int, failing: bool = False) -> float:
    """One ``group`` of n signatures."""
    task = globals()["failing"] if failing else job
    start = time.perf_counter()
    now = time.time()
    group(task.s(now) for _ in range(n)).apply_async()
    return time.perf_counter() - start


def warmup() -> None:
    """Send the warm-up job."""
    job.delay(-1.0)


def send_paced(times: list[float]) -> None:
    """Send one job at each wall-clock time."""
    for at in times:
        delay = at - time.time()
        if delay > 0:
            time.sleep(delay)
        job.delay(time.time())


def dead_count() -> int:
    """Task results stored with state FAILURE."""
    with redis.Redis.from_url(URL) as r:
        keys = list(r.scan_iter(match="celery-task-meta-*", count=1000))
        values = r.mget(keys) if keys else []
    return sum(1 for v in values if v and b'"FAILURE"' in v)
