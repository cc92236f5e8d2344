"""RQ: ``Queue.enqueue`` / ``enqueue_many``, one ``SimpleWorker`` process."""

from __future__ import annotations

import os
import time

from _probe import hit
from redis import Redis
from rq import Queue, Retry
from rq.registry import FailedJobRegistry

NAME = "RQ"
URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/3")


def job(sent_at: float) -> None:
    """The no-op job."""
    hit(sent_at)


def failing(sent_at: float) -> None:
    """Fails every time."""
    hit(sent_at, fail=True)


def _queue() -> Queue:
    return Queue("bench", connection=Redis.from_url(URL))


def worker_cmd(python: str) -> list[str]:
    """One worker process; SimpleWorker runs jobs in the worker process itself
    (the default Worker forks once per job, far slower)."""
    return [
        python, "-m", "rq.cli", "worker", "--url", URL, "--worker-class",
        "rq.worker.SimpleWorker", "--quiet", "bench",
    ]  # fmt: skip


def enqueue_one(n: int) -> float:
    """``enqueue`` n times."""
    q = _queue()
    start = time.perf_counter()
    for _ in range(n):
        q.enqueue(job, time.time())
    return time.perf_counter() - start


def enqueue_bulk(n: int, failing: bool = False) -> float:
    """One ``enqueue_many`` (a single pipeline)."""
    q = _queue()
    fn = globals()["failing"] if failing else job
    retry = Retry(max=3) if failing else None
    start = time.perf_counter()
    now = time.time()
    q.enqueue_many([Queue.prepare_data(fn, (now,), retry=retry) for _ in range(n)])
    return time.perf_counter() - start


def warmup() -> None:
    """Send the warm-up job."""
    _queue().enqueue(job, -1.0)


def send_paced(times: list[float]) -> None:
    """Send one job at each wall-clock time."""
    q = _queue()
    for at in times:
        delay = at - time.time()
        if delay > 0:
            time.sleep(delay)
        q.enqueue(job, time.time())


def dead_count() -> int:
    """Jobs in the failed job registry."""
    q = _queue()
    return FailedJobRegistry(queue=q).count
