"""FastStream 0.7 on NATS JetStream: a work-queue stream, one durable subscriber.

Defaults: FastStream's JetStream subscriber as its docs show it (a push consumer,
the message acked after the handler returns). ``BENCH_PROFILE=tuned``: a pull
subscriber fetching 100 messages per request, whose handlers FastStream runs at once.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from _probe import hit
from faststream import FastStream
from faststream.nats import JStream, NatsBroker, PullSub, RetentionPolicy

SERVER = "nats://127.0.0.1:4222"
SUBJECT = "fsbench.jobs"
STREAM = JStream("FSBENCH", subjects=[SUBJECT], retention=RetentionPolicy.WORK_QUEUE)
TUNED = os.environ.get("BENCH_PROFILE") == "tuned"

broker = NatsBroker(SERVER)
app = FastStream(broker)

_options: dict[str, object] = {"pull_sub": PullSub(batch_size=100)} if TUNED else {}


@broker.subscriber(SUBJECT, stream=STREAM, durable="fsworker", **_options)  # type: ignore[call-overload]
async def job(body: dict[str, float]) -> None:
    """The no-op job."""
    hit(body["t"])


def worker_cmd() -> list[str]:
    """One worker process."""
    return [sys.executable, "-m", "faststream", "run", "bench_faststream:app"]


async def _producer() -> NatsBroker:
    producer = NatsBroker(SERVER)
    await producer.connect()
    js = producer._connection.jetstream()  # type: ignore[attr-defined]
    from nats.js.api import StreamConfig

    config = StreamConfig(
        name="FSBENCH", subjects=[SUBJECT], retention=RetentionPolicy.WORK_QUEUE
    )
    try:
        await js.add_stream(config)
    except Exception:
        await js.update_stream(config)
    return producer


async def enqueue_one(n: int) -> float:
    """Publish ``n`` messages one by one, each acked by the stream; seconds."""
    p = await _producer()
    try:
        start = time.perf_counter()
        for _ in range(n):
            await p.publish({"t": time.time()}, SUBJECT, stream="FSBENCH")
        return time.perf_counter() - start
    finally:
        await p.stop()


async def enqueue_bulk(n: int) -> float:
    """Publish ``n`` messages, 1,000 at a time concurrently (FastStream has no
    batch publish on NATS); seconds taken."""
    p = await _producer()
    try:
        start = time.perf_counter()
        now = time.time()
        for i in range(0, n, 1000):
            await asyncio.gather(
                *(
                    p.publish({"t": now}, SUBJECT, stream="FSBENCH")
                    for _ in range(min(1000, n - i))
                )
            )
        return time.perf_counter() - start
    finally:
        await p.stop()


async def send_paced(times: list[float]) -> None:
    """Publish one message at each wall-clock time in ``times`` (-1: warm-up)."""
    p = await _producer()
    try:
        for at in times:
            if at < 0:
                await p.publish({"t": -1.0}, SUBJECT, stream="FSBENCH")
                continue
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await p.publish({"t": time.time()}, SUBJECT, stream="FSBENCH")
    finally:
        await p.stop()


async def reset() -> None:
    """Delete the stream (its consumer goes with it)."""
    import nats

    nc = await nats.connect(SERVER)
    try:
        await nc.jetstream().delete_stream("FSBENCH")
    except Exception:
        pass
    finally:
        await nc.close()
