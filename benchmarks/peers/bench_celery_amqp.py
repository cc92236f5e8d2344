"""Celery with the RabbitMQ broker (py-amqp): defaults (prefork, one process per
CPU) or tuned (16 threads); Celery keeps no dead letters.
"""

from __future__ import annotations

import os
import time

from _probe import JobFailed, hit
from celery import Celery, Task, group

NAME = "Celery (RabbitMQ)"
URL = os.environ.get("BENCH_URL", "amqp://guest:guest@127.0.0.1:5672/")
TUNED = [  # as bench_celery.TUNED
    "-P", "threads", "-c", "16", "--without-gossip", "--without-mingle",
    "--without-heartbeat",
]  # fmt: skip

app = Celery("bench_celery_amqp", broker=URL)
app.conf.update(
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    task_default_queue="bench.celery",
)


@app.task
def job(sent_at: float) -> None:
    """The no-op job."""
    hit(sent_at)


@app.task(bind=True, max_retries=3)
def failing(self: Task, sent_at: float) -> None:
    """Fails every time; retried at once three times."""
    try:
        hit(sent_at, fail=True)
    except JobFailed as exc:
        raise self.retry(exc=exc, countdown=0) from exc


def worker_cmd(python: str, tuned: bool) -> list[str]:
    """``celery worker`` with no flags, or tuned."""
    cmd = [python, "-m", "celery", "-A", "bench_celery_amqp", "worker"]
    return cmd + (TUNED if tuned else [])


def enqueue_one(n: int) -> float:
    """``delay`` n times."""
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
    """Celery keeps no dead letters: failures end as FAILURE and are gone."""
    return 0


def queues() -> list[str]:
    """The queues this system makes (deleted between workloads)."""
    return ["bench.celery"]
