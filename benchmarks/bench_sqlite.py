"""Benchmark of the embedded SQLite backend, in one run.

    python benchmarks/bench_sqlite.py [--json] [--drain N] [--latency N] [--fail N]

The workloads live in ``postroom.bench`` (also run by ``postroom bench``), on a
fresh database file in a temporary directory:

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
import json
import sqlite3
import tempfile
from pathlib import Path

from rich.console import Console

from postroom.bench import BenchSizes, run_bench
from postroom.cli.bench import results_table


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
    sizes = BenchSizes(args.single, args.drain, args.latency, args.fail, args.idle)
    with tempfile.TemporaryDirectory(prefix="postroom-bench-") as tmp:
        url = f"sqlite:///{Path(tmp)}/bench.db"
        if args.options:
            url += "?" + args.options
        results = run_bench(url, sizes)
    results["sqlite_version"] = sqlite3.sqlite_version
    if args.json:
        print(json.dumps(results, indent=2))
        return
    Console().print(results_table(results))
    before, after = results["load_average_1min"]
    print(
        f"SQLite {results['sqlite_version']}, {results['cpus']} CPUs, "
        f"load average {before:.2f} before, {after:.2f} after"
    )


if __name__ == "__main__":
    main()
