"""postroom: the App run by ``postroom worker``, and the sync client's sends.

``BENCH_URL`` chooses the backend (Redis, or a SQLite file for the embedded row);
the job's ``INCR`` goes to the harness's Redis whatever the backend.
"""

from __future__ import annotations

import os
import time

from _probe import ahit, hit

import postroom

NAME = "postroom"
URL = os.environ.get("BENCH_URL", "redis://127.0.0.1:6379/1")
QUEUE = "bench"

app = postroom.App(URL)
# Read once, as the other systems' job modules do (not an environment lookup per job).
FAIL = os.environ.get("BENCH_MODE") == "fail"


if os.environ.get("BENCH_POSTROOM_DEF"):  # a def handler (threads) instead

    @app.handler(QUEUE)
    def job(body: dict[str, float]) -> None:
        """The job: one INCR with the sync Redis client."""
        hit(body["t"], fail=FAIL)

else:

    @app.handler(QUEUE)  # the default concurrency
    async def ajob(body: dict[str, float]) -> None:
        """The job: one awaited INCR (fails in the failing workload)."""
        await ahit(body["t"], fail=FAIL)


# Tuned: more messages in flight per process (the default is 100);
# BENCH_POSTROOM_TUNED replaces the flags (the defaults sweep of docs/workers.md).
TUNED = os.environ.get("BENCH_POSTROOM_TUNED", "--concurrency 200").split()


def worker_cmd(python: str, tuned: bool) -> list[str]:
    """``postroom worker`` with no flags (one process per CPU), or tuned."""
    exe = os.path.join(os.path.dirname(python), "postroom")
    return [exe, "worker", "bench_postroom:app", *(TUNED if tuned else [])]


def _client() -> postroom.Client:
    c = postroom.connect(URL)
    c.declare_queue(
        QUEUE, max_attempts=4, backoff=postroom.Backoff(initial=0.0, jitter=False)
    )
    return c


def enqueue_one(n: int) -> float:
    """``send`` n times with the sync client; seconds taken."""
    with _client() as c:
        start = time.perf_counter()
        for _ in range(n):
            c.send(QUEUE, {"t": time.time()})
        return time.perf_counter() - start


def enqueue_bulk(n: int, failing: bool = False) -> float:
    """One ``send_many`` of n messages (the worker's ``BENCH_MODE`` makes the job
    fail, so ``failing`` changes nothing)."""
    with _client() as c:
        start = time.perf_counter()
        now = time.time()
        c.send_many(QUEUE, [{"t": now} for _ in range(n)])
        return time.perf_counter() - start


def warmup() -> None:
    """Send the warm-up job."""
    with _client() as c:
        c.send(QUEUE, {"t": -1.0})


def send_paced(times: list[float]) -> None:
    """Send one message at each wall-clock time in ``times``."""
    with _client() as c:
        for at in times:
            delay = at - time.time()
            if delay > 0:
                time.sleep(delay)
            c.send(QUEUE, {"t": time.time()})


def dead_count() -> int:
    """Messages in the dead letter store."""
    with _client() as c:
        return c.stats(QUEUE).dead
