"""Raw nats-py on JetStream, the ceiling: a work-queue stream, one durable pull
consumer, a fetch loop acking each message without waiting for the server.

Defaults: fetch 10 at a time, one message handled after the other.
``BENCH_PROFILE=tuned``: fetch 256 at a time, the batch's jobs run concurrently.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import nats
import nats.errors
from _probe import hit
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig

SERVER = "nats://127.0.0.1:4222"
SUBJECT = "rawbench.jobs"
STREAM = "RAWBENCH"
TUNED = os.environ.get("BENCH_PROFILE") == "tuned"


async def _connect() -> tuple[nats.NATS, object]:
    nc = await nats.connect(SERVER)
    js = nc.jetstream()
    config = StreamConfig(
        name=STREAM, subjects=[SUBJECT], retention=RetentionPolicy.WORK_QUEUE
    )
    try:
        await js.add_stream(config)
    except Exception:
        await js.update_stream(config)
    return nc, js


async def job(body: dict[str, float]) -> None:
    """The no-op job."""
    hit(body["t"])


async def serve() -> None:
    """Fetch and ack until killed."""
    _nc, js = await _connect()
    await js.add_consumer(  # type: ignore[attr-defined]
        STREAM, ConsumerConfig(durable_name="raw", ack_policy=AckPolicy.EXPLICIT)
    )
    sub = await js.pull_subscribe_bind("raw", STREAM)  # type: ignore[attr-defined]
    batch = 256 if TUNED else 10
    while True:
        try:
            msgs = await sub.fetch(batch, timeout=1)
        except nats.errors.TimeoutError:
            continue

        async def one(msg: object) -> None:
            await job(json.loads(msg.data))  # type: ignore[attr-defined]
            await msg.ack()  # type: ignore[attr-defined]

        if TUNED:
            await asyncio.gather(*(one(m) for m in msgs))
        else:
            for m in msgs:
                await one(m)


def worker_cmd() -> list[str]:
    """One worker process."""
    return [
        sys.executable,
        "-c",
        "import asyncio, bench_natspy as b; asyncio.run(b.serve())",
    ]


async def enqueue_one(n: int) -> float:
    """Publish ``n`` messages one by one, each acked by the stream; seconds."""
    nc, js = await _connect()
    try:
        start = time.perf_counter()
        for _ in range(n):
            await js.publish(SUBJECT, json.dumps({"t": time.time()}).encode())  # type: ignore[attr-defined]
        return time.perf_counter() - start
    finally:
        await nc.close()


async def enqueue_bulk(n: int) -> float:
    """Publish ``n`` messages, 1,000 at a time concurrently; seconds taken."""
    nc, js = await _connect()
    try:
        start = time.perf_counter()
        data = json.dumps({"t": time.time()}).encode()
        for i in range(0, n, 1000):
            await asyncio.gather(
                *(js.publish(SUBJECT, data) for _ in range(min(1000, n - i)))  # type: ignore[attr-defined]
            )
        return time.perf_counter() - start
    finally:
        await nc.close()


async def send_paced(times: list[float]) -> None:
    """Publish one message at each wall-clock time in ``times`` (-1: warm-up)."""
    nc, js = await _connect()
    try:
        for at in times:
            if at < 0:
                await js.publish(SUBJECT, b'{"t": -1.0}')  # type: ignore[attr-defined]
                continue
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await js.publish(SUBJECT, json.dumps({"t": time.time()}).encode())  # type: ignore[attr-defined]
    finally:
        await nc.close()


async def reset() -> None:
    """Delete the stream (its consumer goes with it)."""
    nc = await nats.connect(SERVER)
    try:
        await nc.jetstream().delete_stream(STREAM)
    except Exception:
        pass
    finally:
        await nc.close()
