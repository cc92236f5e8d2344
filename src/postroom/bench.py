"""``postroom bench``: throughput, latency and idle cost on any backend, in one run.

Measures, on fresh queues (a temporary SQLite file unless a URL is given):

- enqueue one by one (``send``) and with ``send_many`` (msg/s);
- drain of N queued no-op messages by one ``postroom worker`` process (msg/s);
- end-to-end latency (``send`` called -> handler running) of single messages sent
  to an idle worker, p50 and p99;
- the failure path: always-failing messages, 3 attempts, zero backoff, until every
  one is a dead letter;
- CPU used by the idle worker process (percent of one core, from the per-thread
  ``/proc/PID/task/*/schedstat`` counters, Linux only).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .client.core import AsyncClient
from .model.retry import Backoff

__all__ = ["BenchSizes", "run_bench"]

_APP = """
import os, time
import postroom

app = postroom.App()
P = os.environ["BENCH_PREFIX"]
LAT = os.environ["BENCH_LATENCY_FILE"]

@app.handler(P + "drain", concurrency=200)
async def drain(body: bytes) -> None:
    pass

@app.handler(P + "latency")
async def latency(message: postroom.Message) -> None:
    now = time.time()
    with open(LAT, "a") as f:
        f.write(f"{message.id} {now}\\n")

@app.handler(P + "fail", concurrency=100)
async def fail(body: bytes) -> None:
    raise RuntimeError("always fails")
"""


@dataclass(frozen=True, slots=True)
class BenchSizes:
    """How much each workload does."""

    single: int = 2_000
    drain: int = 20_000
    latency: int = 200
    fail: int = 2_000
    idle: float = 10.0


def _cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` (nanosecond schedstat, not 10 ms ticks)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


class _Bench:
    def __init__(self, client: AsyncClient, prefix: str, tmp: Path) -> None:
        self.client = client
        self.p = prefix
        self.tmp = tmp
        self.lat_file = tmp / "latency.txt"

    async def _acked(self, queue: str) -> int:
        return (await self.client.counters([queue]))[queue]["acked"]

    async def send(self, n_single: int, n_many: int) -> dict[str, float]:
        c, single_q, drain_q = self.client, self.p + "single", self.p + "drain"
        await c.declare_queue(single_q)
        await c.declare_queue(drain_q)
        # Declared before the worker starts, which would create them with defaults.
        await c.declare_queue(self.p + "latency")
        no_wait = Backoff(initial=0, max=0, jitter=False)
        await c.declare_queue(self.p + "fail", max_attempts=3, backoff=no_wait)
        t = time.perf_counter()
        for i in range(n_single):
            await c.send(single_q, {"n": i})
        single = n_single / (time.perf_counter() - t)
        await c.purge(single_q)
        t = time.perf_counter()
        for start in range(0, n_many, 1000):
            batch = [{"n": i} for i in range(start, min(n_many, start + 1000))]
            await c.send_many(drain_q, batch)
        many = n_many / (time.perf_counter() - t)
        return {"send_one_by_one_msg_s": single, "send_many_msg_s": many}

    async def drain(self, n: int, started: float) -> dict[str, float]:
        """Rate from the first ack seen to the last, polled every 10 ms.

        When the first poll already sees every message acked, the rate is taken
        from the worker's start (``started``, a ``perf_counter`` time) instead.
        """
        first: tuple[float, int] | None = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            acked = await self._acked(self.p + "drain")
            now = time.perf_counter()
            if first is None and acked > 0:
                first = (now, acked)
            if acked >= n and first is not None:
                if first[1] >= n:
                    return {"drain_msg_s": n / (now - started)}
                return {"drain_msg_s": (n - first[1]) / (now - first[0])}
            await asyncio.sleep(0.01)
        raise RuntimeError("the worker did not drain the queue within 300 s")

    async def latency(self, n: int) -> dict[str, float]:
        """Single messages to an idle worker, 25 ms apart."""
        queue = self.p + "latency"
        sent: dict[str, tuple[float, float]] = {}
        for _ in range(n):
            await asyncio.sleep(0.025)
            before = time.time()
            mid = await self.client.send(queue, {})
            sent[mid] = (before, time.time())
        deadline = time.monotonic() + 60
        lines: list[str] = []
        while time.monotonic() < deadline and len(lines) < n:
            await asyncio.sleep(0.05)
            if self.lat_file.exists():
                lines = self.lat_file.read_text().splitlines()
        total, send, deliver = [], [], []
        for line in lines:
            mid, at = line.split()
            before, after = sent[mid]
            total.append((float(at) - before) * 1000)
            send.append((after - before) * 1000)
            deliver.append((float(at) - after) * 1000)
        return {
            "latency_p50_ms": _pct(total, 0.5),
            "latency_p99_ms": _pct(total, 0.99),
            "latency_send_p50_ms": _pct(send, 0.5),
            "latency_deliver_p50_ms": _pct(deliver, 0.5),
            "latency_samples": len(total),
        }

    async def fail(self, n: int) -> dict[str, float]:
        """n always-failing messages, 3 attempts, zero backoff, until all are dead."""
        queue = self.p + "fail"
        t = time.perf_counter()
        for start in range(0, n, 1000):
            batch = [{"n": i} for i in range(start, min(n, start + 1000))]
            await self.client.send_many(queue, batch)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if (await self.client.stats(queue)).dead >= n:
                took = time.perf_counter() - t
                return {
                    "fail_seconds": took,
                    "fail_dead_letters_s": n / took,
                    "fail_attempts_s": 3 * n / took,
                }
            await asyncio.sleep(0.02)
        raise RuntimeError("failing messages did not all become dead letters in 300 s")

    def start_worker(self, url: str) -> subprocess.Popen[bytes]:
        (self.tmp / "bench_app.py").write_text(_APP)
        env = {
            **os.environ,
            "POSTROOM_URL": url,
            "BENCH_PREFIX": self.p,
            "BENCH_LATENCY_FILE": str(self.lat_file),
        }
        code = "from postroom.cli import main; main()"
        # One process (the command's default is one per CPU): its CPU is measured.
        args = [sys.executable, "-c", code, "worker", "bench_app:app", "-p", "1"]
        with open(self.tmp / "worker.log", "wb") as log:
            return subprocess.Popen(
                [*args, "--log-level", "ERROR"],
                cwd=self.tmp,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    async def cleanup(self) -> None:
        for name in ("single", "drain", "latency", "fail"):
            for dead in (False, True):
                await self.client.purge(self.p + name, dead=dead)


def _idle(pid: int, seconds: float) -> dict[str, float]:
    if not Path(f"/proc/{pid}/task").exists():
        return {}
    before = _cpu_seconds(pid)
    time.sleep(seconds)
    used = _cpu_seconds(pid) - before
    return {"idle_cpu_percent": 100 * used / seconds, "idle_seconds": seconds}


def _stop(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


async def _run(
    url: str | None, sizes: BenchSizes, tmp: Path, phase: Callable[[str], None]
) -> dict[str, Any]:
    url = url or f"sqlite:///{tmp}/bench.db"
    bench_prefix = f"bench-{secrets.token_hex(3)}."
    results: dict[str, Any] = {"url": url, "drain_messages": sizes.drain}
    async with AsyncClient(url) as client:
        b = _Bench(client, bench_prefix, tmp)
        phase("enqueue")
        results.update(await b.send(sizes.single, sizes.drain))
        started = time.perf_counter()
        worker = b.start_worker(url)
        try:
            phase("drain")
            results.update(await b.drain(sizes.drain, started))
            phase("idle")
            await asyncio.sleep(1.0)  # let the worker settle into idleness
            results.update(await asyncio.to_thread(_idle, worker.pid, sizes.idle))
            phase("latency")
            results.update(await b.latency(sizes.latency))
            phase("failure path")
            results.update(await b.fail(sizes.fail))
        finally:
            await asyncio.to_thread(_stop, worker)
            await b.cleanup()
    return results


def run_bench(
    url: str | None = None,
    sizes: BenchSizes | None = None,
    *,
    on_phase: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run every workload against ``url`` (default: a temporary SQLite file).

    ``on_phase`` is called with each workload's name as it starts. Queues are named
    ``bench-<random>.*`` and purged at the end, so a shared backend is left clean.
    """
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="postroom-bench-") as tmp:
        results = asyncio.run(
            _run(url, sizes or BenchSizes(), Path(tmp), on_phase or (lambda _: None))
        )
    results["load_average_1min"] = [load_before, os.getloadavg()[0]]
    results["cpus"] = os.cpu_count()
    return results
