"""Inside a worker process: the job itself, one Redis ``INCR``, which also counts.

Every library runs the same job: one ``INCR bench:count`` on the Redis database
of the harness (``BENCH_REDIS``), awaited with ``redis.asyncio`` in an ``async
def`` job (:func:`ahit`) or called with the sync client in a ``def`` job
(:func:`hit`). The count the ``INCR`` returns is global, so it also counts job runs
over several worker processes: the run that makes it 1 stores ``bench:first``,
the one that reaches ``BENCH_TARGET`` stores ``bench:last`` (one extra command
each, once per workload). In the ``latency`` mode each run also pushes its latency
(send to start) to ``bench:lat``, after the time was taken. ``fail`` runs raise
after the ``INCR``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import redis
import redis.asyncio

COUNT_KEY, FIRST_KEY, LAST_KEY = "bench:count", "bench:first", "bench:last"
LAT_KEY, STARTED_KEY = "bench:lat", "bench:started"
_target = int(os.environ.get("BENCH_TARGET", "0"))
_mode = os.environ.get("BENCH_MODE", "drain")
_url = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/15")
_sync: redis.Redis | None = None
_async: dict[int, redis.asyncio.Redis] = {}  # per event loop (one per process)
_lock = threading.Lock()
# Connections of the job's client: enough for every job in flight (redis-py's
# default pool refuses a 101st connection, which would fail the jobs).
_POOL = 1000


class JobFailed(Exception):
    """Raised by the always-failing job."""


def _sync_client() -> redis.Redis:
    global _sync
    with _lock:
        if _sync is None:
            _sync = redis.Redis(
                connection_pool=redis.BlockingConnectionPool.from_url(
                    _url, max_connections=_POOL
                )
            )
        return _sync


def _after(r: Any, n: int, now: float, sent_at: float) -> list[tuple[Any, ...]]:
    """The bookkeeping commands of run ``n`` (none for most runs)."""
    cmds: list[tuple[Any, ...]] = []
    if _mode == "latency":
        cmds.append(("RPUSH", LAT_KEY, repr(now - sent_at)))
    if n == 1:
        cmds.append(("SET", FIRST_KEY, repr(now)))
    if n == _target:
        cmds.append(("SET", LAST_KEY, repr(time.time())))
    return cmds


def hit(sent_at: float, *, fail: bool = False) -> None:
    """The job (sync): one INCR; a negative ``sent_at`` marks the warm-up job,
    which only tells the harness that the worker is consuming."""
    now = time.time()
    r = _sync_client()
    if sent_at < 0:
        r.set(STARTED_KEY, "1")
        return
    n = int(r.incr(COUNT_KEY))
    for cmd in _after(r, n, now, sent_at):
        r.execute_command(*cmd)
    if fail:
        raise JobFailed("this job always fails")


async def ahit(sent_at: float, *, fail: bool = False) -> None:
    """The job (async): one awaited INCR, as :func:`hit`."""
    import asyncio

    now = time.time()
    loop = id(asyncio.get_running_loop())
    r = _async.get(loop)
    if r is None:
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            _url, max_connections=_POOL
        )
        r = _async[loop] = redis.asyncio.Redis(connection_pool=pool)
    if sent_at < 0:
        await r.set(STARTED_KEY, "1")
        return
    n = int(await r.incr(COUNT_KEY))
    for cmd in _after(r, n, now, sent_at):
        await r.execute_command(*cmd)
    if fail:
        raise JobFailed("this job always fails")
