"""Inside a worker process: count job runs and report timings to the harness.

The harness starts each worker with ``BENCH_REDIS`` (where to report),
``BENCH_MODE`` (``drain``, ``latency`` or ``fail``) and ``BENCH_TARGET`` (how many
job runs end the workload). Jobs call :func:`hit` once per run; the run that
reaches the target stores ``{"first": t, "last": t, "latencies": [...]}`` in the
``bench:result`` key with one SET, so the probe costs no Redis round trip per job.
"""

from __future__ import annotations

import json
import os
import threading
import time

import redis

RESULT_KEY = "bench:result"
_lock = threading.Lock()
_count = 0
_first = 0.0
_latencies: list[float] = []
_target = int(os.environ.get("BENCH_TARGET", "0"))
_mode = os.environ.get("BENCH_MODE", "drain")


class JobFailed(Exception):
    """Raised by the always-failing job."""


STARTED_KEY = "bench:started"


def hit(sent_at: float, *, fail: bool = False) -> None:
    """Count one job run, then fail if asked; a negative ``sent_at`` marks the
    warm-up job, which only tells the harness that the worker is consuming."""
    global _count, _first
    now = time.time()
    if sent_at < 0:
        with redis.Redis.from_url(os.environ["BENCH_REDIS"]) as r:
            r.set(STARTED_KEY, "1")
        return
    with _lock:
        _count += 1
        if _count == 1:
            _first = now
        if _mode == "latency":
            _latencies.append(now - sent_at)
        done = _count == _target
    if done:
        result = {"first": _first, "last": now, "latencies": _latencies}
        with redis.Redis.from_url(os.environ["BENCH_REDIS"]) as r:
            r.set(RESULT_KEY, json.dumps(result))
    if fail:
        raise JobFailed("this job always fails")
