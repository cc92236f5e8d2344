"""Dramatiq with its Redis broker: actors, ``send``, ``group``."""

from __future__ import annotations

import os
import time

import dramatiq
import redis
from _probe import hit
from dramatiq.brokers.redis import RedisBroker

NAME = "Dramatiq"
URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/4")

broker = RedisBroker(url=URL)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", max_retries=0)
def job(sent_at: float) -> None:
    """The job: one INCR."""
    hit(sent_at)


@dramatiq.actor(queue_name="bench", max_retries=3, min_backoff=1, max_backoff=1)
def failing(sent_at: float) -> None:
    """Fails every time; three retries 1 ms apart, then the dead letter queue."""
    hit(sent_at, fail=True)


# Tuned: 16 threads per process (the job waits on I/O); the default is 8.
TUNED = ["--threads", "16"]


def worker_cmd(python: str, tuned: bool) -> list[str]:
    """``dramatiq`` with no flags (one process per CPU, 8 threads each), or tuned."""
    return [python, "-m", "dramatiq", "bench_dramatiq", *(TUNED if tuned else [])]


def enqueue_one(n: int) -> float:
    """``send`` n times."""
    start = time.perf_counter()
    for _ in range(n):
        job.send(time.time())
    return time.perf_counter() - start


def enqueue_bulk(n: int, failing: bool = False) -> float:
    """One ``group`` of n messages."""
    actor = globals()["failing"] if failing else job
    start = time.perf_counter()
    now = time.time()
    dramatiq.group(actor.message(now) for _ in range(n)).run()
    return time.perf_counter() - start


def warmup() -> None:
    """Send the warm-up job."""
    job.send(-1.0)


def send_paced(times: list[float]) -> None:
    """Send one job at each wall-clock time."""
    for at in times:
        delay = at - time.time()
        if delay > 0:
            time.sleep(delay)
        job.send(time.time())


def dead_count() -> int:
    """Messages in the queue's dead letter set."""
    with redis.Redis.from_url(URL) as r:
        return int(r.zcard("dramatiq:bench.XQ"))
