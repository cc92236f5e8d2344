"""postroom on Redis side by side with Celery, RQ, Dramatiq, arq and Taskiq.

Install the peers as ``requirements.txt`` beside this file says, then (one run,
every system, a table at the end)::

    python benchmarks/peers/run.py [--only postroom,rq] [--quick] [--repeat 3]
                                   [--workloads enqueue,drain,latency,failing]
                                   [--json out.json]

Every system uses the same Redis server (127.0.0.1:6379), each its own database
number, flushed before each workload, and its idiomatic API. The workloads:

1. enqueue 20,000 jobs one by one (each send awaited), and in bulk (the library's
   batch call, or concurrent sends where it has none);
2. drain 20,000 queued no-op jobs by one worker process (first to last job run);
3. latency (send to start of the job) at 200 jobs/s offered, p50 and p99;
4. 2,000 always-failing jobs through 3 retries to the dead/failed store.

Job runs are counted inside the worker (``_probe.py``) without any extra Redis
round trip per job. With ``--repeat N`` the systems run N times in turn and the
table gives the median of each figure (the machine is shared: single runs are
noisy). The JSON output also has the commands the Redis server executed per
message (commands inside Lua scripts included); ``roundtrips.py`` counts
postroom's round trips.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SYSTEMS = {
    "postroom": ("bench_postroom", 1),
    "celery": ("bench_celery", 2),
    "rq": ("bench_rq", 3),
    "dramatiq": ("bench_dramatiq", 4),
    "arq": ("bench_arq", 5),
    "taskiq": ("bench_taskiq", 6),
}
REDIS = "redis://127.0.0.1:6379"
RESULT_KEY, STARTED_KEY = "bench:result", "bench:started"


class Bench:
    """Runs the workloads of one system."""

    def __init__(self, name: str, sizes: dict[str, int]) -> None:
        module, db = SYSTEMS[name]
        self.url = f"{REDIS}/{db}"
        os.environ["BENCH_URL"] = self.url
        self.mod: Any = importlib.import_module(module)
        self.sizes = sizes
        self.redis = redis.Redis.from_url(self.url)

    def flush(self) -> None:
        self.redis.flushdb()

    def commands(self) -> int:
        """Commands the server has processed so far (all databases)."""
        return int(self.redis.info("stats")["total_commands_processed"])

    def start_worker(self, mode: str, target: int) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "BENCH_URL": self.url,
            "BENCH_REDIS": self.url,
            "BENCH_MODE": mode,
            "BENCH_TARGET": str(target),
        }
        return subprocess.Popen(
            self.mod.worker_cmd(sys.executable),
            cwd=HERE,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_key(self, key: str, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.redis.get(key)
            if value is not None:
                return bytes(value)
            time.sleep(0.02)
        raise TimeoutError(f"{self.mod.NAME}: no {key} after {timeout:.0f} s")

    def stop_worker(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def with_worker(self, mode: str, target: int, body: Any) -> Any:
        proc = self.start_worker(mode, target)
        try:
            self.mod.warmup()
            self.wait_key(STARTED_KEY, 60)
            return body()
        finally:
            self.stop_worker(proc)

    # -- the workloads -------------------------------------------------------------

    def enqueue(self, bulk: bool) -> tuple[float, float]:
        n = self.sizes["enqueue"]
        self.flush()
        before = self.commands()
        took = self.mod.enqueue_bulk(n) if bulk else self.mod.enqueue_one(n)
        return n / took, (self.commands() - before) / n

    def drain(self) -> tuple[float, float]:
        n = self.sizes["drain"]
        self.flush()
        self.mod.enqueue_bulk(n)
        before = self.commands()
        proc = self.start_worker("drain", n)
        try:
            result = json.loads(self.wait_key(RESULT_KEY, 600))
        finally:
            self.stop_worker(proc)
        return n / (result["last"] - result["first"]), (self.commands() - before) / n

    def latency(self) -> tuple[float, float]:
        n, rate = self.sizes["latency"], 200.0
        self.flush()

        def body() -> list[float]:
            start = time.time() + 0.2
            self.mod.send_paced([start + i / rate for i in range(n)])
            return list(json.loads(self.wait_key(RESULT_KEY, 120))["latencies"])

        lat = sorted(self.with_worker("latency", n, body))
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return statistics.median(lat) * 1000, p99 * 1000

    def failing(self) -> tuple[float, int]:
        n = self.sizes["failing"]
        self.flush()

        def body() -> tuple[float, int]:
            start = time.time()
            self.mod.enqueue_bulk(n, failing=True)
            last = json.loads(self.wait_key(RESULT_KEY, 600))["last"]
            deadline, dead = time.monotonic() + 30, 0
            while time.monotonic() < deadline:
                dead = self.mod.dead_count()
                if dead >= n:
                    break
                time.sleep(0.5)
            return last - start, dead

        return tuple(self.with_worker("fail", n * 4, body))  # type: ignore[return-value]

    def run(self, workloads: set[str]) -> dict[str, Any]:
        """Run the chosen workloads; figures of the others are left out."""
        row: dict[str, Any] = {"system": self.mod.NAME, "commands_per_msg": {}}
        cmds = row["commands_per_msg"]
        if "enqueue" in workloads:
            row["enqueue_one"], cmds["enqueue_one"] = self.enqueue(bulk=False)
            row["enqueue_bulk"], cmds["enqueue_bulk"] = self.enqueue(bulk=True)
        if "drain" in workloads:
            row["drain"], cmds["drain"] = self.drain()
        if "latency" in workloads:
            row["p50_ms"], row["p99_ms"] = self.latency()
        if "failing" in workloads:
            row["fail_s"], row["dead"] = self.failing()
        self.flush()
        return row


def table(rows: list[dict[str, Any]], sizes: dict[str, int]) -> str:
    """The results as a Markdown table."""
    lines = [
        f"| system | enqueue one by one (msg/s) | enqueue bulk (msg/s) | drain, 1 "
        f"process (msg/s) | latency p50 / p99 at 200/s (ms) | {sizes['failing']:,} "
        "failing x 4 runs (s) | in failed store |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [
            _fmt(r, "enqueue_one", "{:,.0f}"),
            _fmt(r, "enqueue_bulk", "{:,.0f}"),
            _fmt(r, "drain", "{:,.0f}"),
            f"{_fmt(r, 'p50_ms', '{:.2f}')} / {_fmt(r, 'p99_ms', '{:.2f}')}",
            _fmt(r, "fail_s", "{:.2f}"),
            _fmt(r, "dead", "{:,.0f}"),
        ]
        lines.append(f"| {r['system']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(row: dict[str, Any], key: str, spec: str) -> str:
    return spec.format(row[key]) if key in row else "-"


def main() -> None:
    """Run the chosen systems and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SYSTEMS))
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (median)")
    parser.add_argument(
        "--workloads", default="enqueue,drain,latency,failing", help="which to run"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sizes = {"enqueue": 20_000, "drain": 20_000, "latency": 1_000, "failing": 2_000}
    if args.quick:
        sizes = {k: v // 10 for k, v in sizes.items()}
    names = args.only.split(",")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_no in range(args.repeat):
        for name in names:
            print(f"round {round_no + 1}: {name} ...", file=sys.stderr, flush=True)
            row = Bench(name, sizes).run(set(args.workloads.split(",")))
            print(json.dumps(row), file=sys.stderr, flush=True)
            runs[name].append(row)
    rows = [median_row(runs[name]) for name in names]
    if args.json:
        args.json.write_text(json.dumps({"median": rows, "runs": runs}, indent=2))
    print(table(rows, sizes))


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over several runs of one system."""
    row = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)):
            row[key] = statistics.median(r[key] for r in runs)
    return row


if __name__ == "__main__":
    main()
