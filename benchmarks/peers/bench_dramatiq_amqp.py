"""Dramatiq with its RabbitMQ broker (pika): actors, ``send``, ``group``.

Defaults: ``dramatiq`` with no flags (one process per CPU, 8 threads each,
prefetch twice the threads, no publisher confirms: a ``send`` returns before the
broker has the message, where postroom waits for the confirm); tuned as the Redis
row (``bench_dramatiq.TUNED``).
"""

from __future__ import annotations

import os
import time

import dramatiq
import pika
from _probe import hit
from dramatiq.brokers.rabbitmq import RabbitmqBroker

NAME = "Dramatiq (RabbitMQ)"
URL = os.environ.get("BENCH_URL", "amqp://guest:guest@127.0.0.1:5672/")
TUNED = ["--threads", "16"]  # as bench_dramatiq.TUNED

broker = RabbitmqBroker(url=URL)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench", max_retries=0)
def job(sent_at: float) -> None:
    """The no-op job."""
    hit(sent_at)


@dramatiq.actor(queue_name="bench", max_retries=3, min_backoff=1, max_backoff=1)
def failing(sent_at: float) -> None:
    """Fails every time; three retries 1 ms apart, then the dead letter queue."""
    hit(sent_at, fail=True)


def worker_cmd(python: str, tuned: bool) -> list[str]:
    """``dramatiq`` with no flags, or tuned."""
    cmd = [python, "-m", "dramatiq", "bench_dramatiq_amqp"]
    return cmd + (TUNED if tuned else [])


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
    """Messages in the dead letter queue."""
    params = pika.URLParameters(URL)
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        return int(ch.queue_declare("bench.XQ", passive=True).method.message_count)
    finally:
        conn.close()


def queues() -> list[str]:
    """The queues this system makes (deleted between workloads)."""
    return ["bench", "bench.DQ", "bench.XQ"]
