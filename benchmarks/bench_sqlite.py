"""Benchmark of the embedded SQLite backend, in one run.

    python benchmarks/bench_sqlite.py [--json] [--drain N] [--latency N] [--fail N]

Measures, on a fresh database file in a temporary directory:

- enqueue one by one (``AsyncClient.send``) and with ``send_many`` (msg/s);
- drain of N queued no-op messages by one worker process (``postroom worker``);
- end-to-end latency (``send`` called -> handler running) of single messages sent
  to an idle worker, p50 and p99;
- the failure path: always-failing messages, 3 attempts, zero backoff, until every
  one is a dead letter;
- CPU used by the idle worker process (percent of one core, from the per-thread
  ``/proc/PID/task/*/schedstat`` counters, in nanoseconds).

Targets on the project's 2-core machine: send_many >= 50,000 msg/s, drain >= 10,000
msg/s, p50 <= 5 ms, idle worker < 1 % of a core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import postroom

APP = """
import os, time
import postroom

app = postroom.App()
LAT = os.environ["BENCH_LATENCY_FILE"]

@app.handler("bench.drain", concurrency=200)
async def drain(body: bytes) -> None:
    pass

@app.handler("bench.latency")
async def latency(message: postroom.Message) -> None:
    now = time.time()
    with open(LAT, "a") as f:
        f.write(f"{message.id} {now}\\n")

@app.handler("bench.fail", concurrency=100)
async def fail(body: bytes) -> None:
    raise RuntimeError("always fails")
"""


def _cpu_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid`` (nanosecond schedstat, not 10 ms ticks)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


async def _counter(client: postroom.AsyncClient, queue: str, name: str) -> int:
    return (await client.backend.counters([queue]))[queue][name]


async def bench_send(
    client: postroom.AsyncClient, n_single: int, n_many: int
) -> dict[str, float]:
    """Enqueue one by one, then with send_many (batches of 1,000) onto bench.drain."""
    await client.declare_queue("bench.single")
    await client.declare_queue("bench.drain")
    t = time.perf_counter()
    for i in range(n_single):
        await client.send("bench.single", {"n": i})
    single = n_single / (time.perf_counter() - t)
    await client.purge("bench.single")
    t = time.perf_counter()
    for start in range(0, n_many, 1000):
        await client.send_many(
            "bench.drain", [{"n": i} for i in range(start, min(n_many, start + 1000))]
        )
    many = n_many / (time.perf_counter() - t)
    return {"send_one_by_one_msg_s": single, "send_many_msg_s": many}


async def bench_drain(client: postroom.AsyncClient, n: int) -> dict[str, float]:
    """Wait for the worker to ack the n queued messages; rate from first to last ack."""
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        acked = await _counter(client, "bench.drain", "acked")
        now = time.perf_counter()
        if first is None and acked > 0:
            first = (now, acked)
        if acked >= n:
            assert first is not None
            return {"drain_msg_s": (n - first[1]) / (now - first[0])}
        await asyncio.sleep(0.01)
    raise RuntimeError("the worker did not drain the queue within 120 s")


async def bench_latency(
    client: postroom.AsyncClient, n: int, lat_file: Path
) -> dict[str, float]:
    """Single messages to an idle worker, 25 ms apart.

    Latency runs from just before ``send`` to the handler's first line; it splits
    into the send itself (until the commit is durable) and the delivery (commit to
    handler: wake-up, claim, dispatch).
    """
    await client.declare_queue("bench.latency")
    sent: dict[str, tuple[float, float]] = {}
    for _ in range(n):
        await asyncio.sleep(0.025)
        before = time.time()
        mid = await client.send("bench.latency", {})
        sent[mid] = (before, time.time())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        lines = lat_file.read_text().splitlines() if lat_file.exists() else []
        if len(lines) >= n:
            break
        await asyncio.sleep(0.05)
    total, send, deliver = [], [], []
    for line in lat_file.read_text().splitlines():
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


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def bench_fail(client: postroom.AsyncClient, n: int) -> dict[str, float]:
    """n always-failing messages, 3 attempts, zero backoff, until all are dead."""
    await client.declare_queue(
        "bench.fail",
        max_attempts=3,
        backoff=postroom.Backoff(initial=0, max=0, jitter=False),
    )
    t = time.perf_counter()
    await client.send_many("bench.fail", [{"n": i} for i in range(n)])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if (await client.stats("bench.fail")).dead >= n:
            took = time.perf_counter() - t
            return {
                "fail_seconds": took,
                "fail_dead_letters_s": n / took,
                "fail_attempts_s": 3 * n / took,
            }
        await asyncio.sleep(0.02)
    raise RuntimeError("failing messages did not all become dead letters in 300 s")


def bench_idle(pid: int, seconds: float) -> dict[str, float]:
    """CPU of the idle worker process over ``seconds``, in percent of one core."""
    before = _cpu_seconds(pid)
    time.sleep(seconds)
    used = _cpu_seconds(pid) - before
    return {"idle_cpu_percent": 100 * used / seconds, "idle_seconds": seconds}


def start_worker(tmp: Path, url: str, lat_file: Path) -> subprocess.Popen[bytes]:
    (tmp / "bench_app.py").write_text(APP)
    env = {**os.environ, "POSTROOM_URL": url, "BENCH_LATENCY_FILE": str(lat_file)}
    code = "from postroom.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, "worker", "bench_app:app", "--log-level", "ERROR"],
        cwd=tmp,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp / "worker.log", "wb"),
    )


async def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    url = f"sqlite:///{tmp}/bench.db"
    if args.options:
        url += "?" + args.options
    lat_file = tmp / "latency.txt"
    results: dict[str, Any] = {"url": url, "drain_messages": args.drain}
    async with postroom.connect_async(url) as client:
        results.update(await bench_send(client, args.single, args.drain))
        worker = start_worker(tmp, url, lat_file)
        try:
            results.update(await bench_drain(client, args.drain))
            await asyncio.sleep(1.0)  # let the worker settle into idleness
            results.update(await asyncio.to_thread(bench_idle, worker.pid, args.idle))
            results.update(await bench_latency(client, args.latency, lat_file))
            results.update(await bench_fail(client, args.fail))
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            if worker.stderr is not None:
                worker.stderr.close()
    return results


TARGETS = {
    "send_many_msg_s": (">=", 50_000),
    "drain_msg_s": (">=", 10_000),
    "latency_p50_ms": ("<=", 5.0),
    "idle_cpu_percent": ("<", 1.0),
}

LABELS = [
    ("send_one_by_one_msg_s", "enqueue one by one (send)", "msg/s"),
    ("send_many_msg_s", "enqueue with send_many (1,000/call)", "msg/s"),
    ("drain_msg_s", "drain by one worker process", "msg/s"),
    ("latency_p50_ms", "end-to-end latency p50", "ms"),
    ("latency_p99_ms", "end-to-end latency p99", "ms"),
    ("latency_send_p50_ms", "  of which send until durable, p50", "ms"),
    ("latency_deliver_p50_ms", "  of which commit to handler, p50", "ms"),
    ("fail_dead_letters_s", "failure path (3 attempts each)", "dead/s"),
    ("fail_attempts_s", "failure path attempts", "attempts/s"),
    ("idle_cpu_percent", "idle worker CPU", "% core"),
]


def print_table(r: dict[str, Any]) -> None:
    print(f"{'measure':<40} {'value':>12}  {'unit':<11} target")
    for key, label, unit in LABELS:
        target = ""
        if key in TARGETS:
            op, bound = TARGETS[key]
            ok = (
                r[key] >= bound
                if op == ">="
                else (r[key] <= bound if op == "<=" else r[key] < bound)
            )
            target = f"{op} {bound:,}  {'ok' if ok else 'MISSED'}"
        print(f"{label:<40} {r[key]:>12,.2f}  {unit:<11} {target}")
    print(
        f"(drain of {r['drain_messages']:,} messages; latency over "
        f"{r['latency_samples']} messages; failure path "
        f"{r['fail_seconds']:.2f} s; idle over {r['idle_seconds']:.0f} s)"
    )
    before, after = r["load_average_1min"]
    print(
        f"{r['url']}; SQLite {r['sqlite_version']}, {r['cpus']} CPUs, "
        f"load average {before:.2f} before, {after:.2f} after"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--single", type=int, default=2_000)
    parser.add_argument("--drain", type=int, default=20_000)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--fail", type=int, default=2_000)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds")
    parser.add_argument(
        "--options", default="", help="sqlite URL query, e.g. synchronous=normal"
    )
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="postroom-bench-") as tmp:
        results = asyncio.run(run(args, Path(tmp)))
    results["load_average_1min"] = [load_before, os.getloadavg()[0]]
    results["sqlite_version"] = __import__("sqlite3").sqlite_version
    results["cpus"] = os.cpu_count()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print_table(results)


if __name__ == "__main__":
    main()
