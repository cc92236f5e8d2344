"""RQ: ``Queue.enqueue`` / ``enqueue_many``, one ``rq worker`` process."""

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
    """The job: one INCR."""
    hit(sent_at)


def failing(sent_at: float) -> None:
    """Fails every time."""
    hit(sent_at, fail=True)


def _queue() -> Queue:
    return Queue("bench", connection=Redis.from_url(URL))


def worker_cmd(python: str, tuned: bool) -> list[str]:
    """``rq worker`` (forks once per job), or tuned: ``SimpleWorker`` runs jobs in
    the worker process itself."""
    cmd = [python, "-m", "rq.cli", "worker", "--url", URL]
    tuning = ["--worker-class", "rq.worker.SimpleWorker"] if tuned else []
    return [*cmd, *tuning, "bench"]


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
