"""postroom on NATS JetStream beside FastStream on NATS and raw nats-py (the
ceiling), each with its defaults and tuned, in one run::

    pip install -e '.[nats]' -r benchmarks/peers/nats/requirements.txt
    python benchmarks/peers/nats/run.py [--only postroom,faststream,natspy]
        [--profiles defaults,tuned] [--n 10000] [--one 2000] [--latency 1000]
        [--rate 200] [--repeat 3] [--json out.json]

Every system uses the nats-server on 127.0.0.1:4222, its own stream(s), deleted
before each workload. The workloads, per system and profile:

1. enqueue ``--one`` jobs one by one (each publish awaited until the stream has
   stored it), and ``--n`` in bulk (``send_many`` for postroom; concurrent
   publishes, 1,000 at a time, for the others);
2. drain the ``--n`` queued no-op jobs by one worker process (first to last job
   run, counted inside the worker by ``_probe.py``);
3. latency (publish to start of the job) of ``--latency`` jobs offered at
   ``--rate`` jobs/s to an idle worker: p50 and p99.

With ``--repeat N`` the systems run N times in turn and the table gives the median
of each figure (the machine is shared: single runs are noisy).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SYSTEMS = {"postroom": "bench_postroom", "faststream": "bench_faststream",
           "natspy": "bench_natspy"}  # fmt: skip


def _start(module: Any, env: dict[str, str], folder: Path) -> subprocess.Popen[bytes]:
    log = (folder / "worker.log").open("ab")
    return subprocess.Popen(
        module.worker_cmd(), cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker gave no {path.name}: see {path.parent}")
        time.sleep(0.01)


def _env(profile: str, mode: str, target: int, folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "BENCH_PROFILE": profile,
        "BENCH_MODE": mode,
        "BENCH_TARGET": str(target),
        "BENCH_DIR": str(folder),
        "PYTHONPATH": str(HERE),
    }


def run_one(name: str, profile: str, args: argparse.Namespace) -> dict[str, float]:
    """Every workload of one system in one profile."""
    os.environ["BENCH_PROFILE"] = profile
    module = importlib.reload(importlib.import_module(SYSTEMS[name]))
    out: dict[str, float] = {}
    asyncio.run(module.reset())
    out["enqueue_one_per_s"] = args.one / asyncio.run(module.enqueue_one(args.one))
    asyncio.run(module.reset())
    out["enqueue_bulk_per_s"] = args.n / asyncio.run(module.enqueue_bulk(args.n))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        proc = _start(module, _env(profile, "drain", args.n, folder), folder)
        try:
            _wait_for(folder / "result.json", proc, 600)
        finally:
            _stop(proc)
        got = json.loads((folder / "result.json").read_text())
        out["drain_per_s"] = args.n / max(got["last"] - got["first"], 1e-9)
    asyncio.run(module.reset())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        proc = _start(module, _env(profile, "latency", args.latency, folder), folder)
        try:
            asyncio.run(module.send_paced([-1.0]))
            _wait_for(folder / "started", proc, 60)
            start = time.time() + 0.2
            times = [start + i / args.rate for i in range(args.latency)]
            asyncio.run(module.send_paced(times))
            _wait_for(folder / "result.json", proc, 120)
        finally:
            _stop(proc)
        lat = sorted(json.loads((folder / "result.json").read_text())["latencies"])
        out["latency_p50_ms"] = 1000 * statistics.median(lat)
        out["latency_p99_ms"] = 1000 * lat[int(0.99 * (len(lat) - 1))]
    asyncio.run(module.reset())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SYSTEMS))
    parser.add_argument("--profiles", default="defaults,tuned")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--one", type=int, default=2_000)
    parser.add_argument("--latency", type=int, default=1_000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {}
    for round_ in range(args.repeat):  # the systems in turn, round after round
        for name in args.only.split(","):
            for profile in args.profiles.split(","):
                key = f"{name}/{profile}"
                print(f"round {round_ + 1}: {key}...", file=sys.stderr, flush=True)
                try:
                    runs.setdefault(key, []).append(run_one(name, profile, args))
                except Exception as exc:  # a shared machine: note it, go on
                    print(f"  {key} failed: {exc!r}", file=sys.stderr, flush=True)
                if args.json:
                    Path(args.json).write_text(json.dumps({"runs": runs}, indent=2))
    results = {
        key: {c: statistics.median(r[c] for r in rows) for c in rows[0]}
        for key, rows in runs.items()
        if rows
    }
    cols = ["enqueue_one_per_s", "enqueue_bulk_per_s", "drain_per_s",
            "latency_p50_ms", "latency_p99_ms"]  # fmt: skip
    print("| system | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for key, row in results.items():
        print(f"| {key} | " + " | ".join(f"{row[c]:,.1f}" for c in cols) + " |")
    if args.json:
        report = {"median": results, "runs": runs}
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
