"""Benchmark of the PostgreSQL backend, in one run.

    python benchmarks/bench_postgres.py [--url URL] [--json] [--drain N] [--latency N]

The workloads of ``postroom.bench`` (as ``bench_sqlite.py``: send and send_many,
drain by one ``postroom worker`` process, end-to-end latency p50/p99, the failure
path, idle CPU of the waiting worker) on a fresh schema of the database in
``--url`` (default: the local server's ``test`` database), dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import uuid

import psycopg
from rich.console import Console

from postroom.backends.postgres import PostgresSettings
from postroom.bench import BenchSizes, run_bench
from postroom.cli.bench import results_table

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--url", default=DEFAULT_URL, help="database and settings (no ?schema=)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--single", type=int, default=2_000)
    parser.add_argument("--drain", type=int, default=20_000)
    parser.add_argument("--latency", type=int, default=200)
    parser.add_argument("--fail", type=int, default=2_000)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds")
    args = parser.parse_args()
    sizes = BenchSizes(args.single, args.drain, args.latency, args.fail, args.idle)
    schema = "bench" + uuid.uuid4().hex[:10]
    sep = "&" if "?" in args.url else "?"
    url = f"{args.url}{sep}schema={schema}"
    try:
        results = run_bench(url, sizes)
    finally:
        conninfo = PostgresSettings.from_url(url).conninfo
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            version = conn.info.server_version
    results["postgres_version"] = f"{version // 10000}.{version % 10000}"
    if args.json:
        print(json.dumps(results, indent=2))
        return
    Console().print(results_table(results))
    before, after = results["load_average_1min"]
    print(
        f"PostgreSQL {results['postgres_version']}, {results['cpus']} CPUs, "
        f"load average {before:.2f} before, {after:.2f} after"
    )


if __name__ == "__main__":
    main()
