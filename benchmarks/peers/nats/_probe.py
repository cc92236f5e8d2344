"""Inside a worker process: count job runs and report timings to the harness.

The harness starts each worker with ``BENCH_DIR`` (where to report), ``BENCH_MODE``
(``drain`` or ``latency``) and ``BENCH_TARGET`` (how many job runs end the
workload). Jobs call :func:`hit` once per run; the run that reaches the target
writes ``result.json`` (``{"first": t, "last": t, "latencies": [...]}``), so the
probe costs nothing per job beyond a counter. A negative ``sent_at`` marks the
warm-up job, which only tells the harness that the worker is consuming.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

_lock = threading.Lock()
_count = 0
_first = 0.0
_latencies: list[float] = []
_target = int(os.environ.get("BENCH_TARGET", "0"))
_mode = os.environ.get("BENCH_MODE", "drain")


def hit(sent_at: float) -> None:
    """Count one job run."""
    global _count, _first
    now = time.time()
    folder = Path(os.environ["BENCH_DIR"])
    if sent_at < 0:
        (folder / "started").write_text("1")
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
        tmp = folder / "result.tmp"
        tmp.write_text(json.dumps(result))
        tmp.rename(folder / "result.json")
