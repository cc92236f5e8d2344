"""postroom on NATS JetStream: the App run by ``postroom worker``, and the producer.

``BENCH_PROFILE=tuned`` sets the handler's concurrency to 500 (default: the App's
default for an ``async def`` handler, 100).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from _probe import hit

import postroom

URL = os.environ.get("BENCH_NATS_URL", "nats://127.0.0.1:4222?prefix=benchpostroom")
QUEUE = "bench"
TUNED = os.environ.get("BENCH_PROFILE") == "tuned"

app = postroom.App(URL)
_options = {"concurrency": 500} if TUNED else {}


@app.handler(QUEUE, **_options)
async def job(body: dict[str, float]) -> None:
    """The no-op job."""
    hit(body["t"])


def worker_cmd() -> list[str]:
    """One worker process."""
    exe = os.path.join(os.path.dirname(sys.executable), "postroom")
    return [exe, "worker", "bench_postroom:app", "--processes", "1", "--grace", "1"]


async def _client() -> postroom.AsyncClient:
    c = await postroom.connect_async(URL).connect()
    await c.declare_queue(QUEUE, max_attempts=4)
    return c


async def enqueue_one(n: int) -> float:
    """Send ``n`` messages one by one; seconds taken."""
    c = await _client()
    try:
        start = time.perf_counter()
        for _ in range(n):
            await c.send(QUEUE, {"t": time.time()})
        return time.perf_counter() - start
    finally:
        await c.aclose()


async def enqueue_bulk(n: int) -> float:
    """Send ``n`` messages with ``send_many`` (batches of 1,000); seconds taken."""
    c = await _client()
    try:
        start = time.perf_counter()
        now = time.time()
        for i in range(0, n, 1000):
            await c.send_many(QUEUE, [{"t": now} for _ in range(min(1000, n - i))])
        return time.perf_counter() - start
    finally:
        await c.aclose()


async def send_paced(times: list[float]) -> None:
    """Send one message at each wall-clock time in ``times`` (-1: the warm-up)."""
    c = await _client()
    try:
        for at in times:
            if at < 0:
                await c.send(QUEUE, {"t": -1.0})
                continue
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await c.send(QUEUE, {"t": time.time()})
    finally:
        await c.aclose()


async def reset() -> None:
    """Delete the queue (its streams) so that each workload starts empty."""
    c = await postroom.connect_async(URL).connect()
    try:
        if QUEUE in await c.queues():
            await c.delete_queue(QUEUE)
    finally:
        await c.aclose()
