"""The drain of ``run.py`` with variants of postroom's worker flags, beside peers,
and the CPU each worker spends per job: what the defaults of docs/workers.md rest on.

    python benchmarks/peers/sweep.py [--jobs 20000] [--rounds 3]
        [--systems 'postroom-sqlite,postroom-sqlite:--concurrency 50,dramatiq']

A system is a name of ``run.py`` (its defaults), or ``postroom`` /
``postroom-sqlite`` followed by ``:`` and worker flags (run as its tuned
command). The rounds interleave the systems (the machine is shared: compare
within a round). For each drain: jobs per second, first job run to last (as
``run.py``), and the CPU of the worker's whole process tree over that span (the
supervisor and its children, which run in sessions of their own) per job, which
depends less on the machine's load than the rate does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    found = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False
    ).stdout.split()
    return [pid, *(p for child in found for p in tree(int(child)))]


def ticks(pid: int) -> int:
    """CPU ticks (user + system) used so far by one process (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


class Sweep(run.Bench):
    """run.Bench's drain, with the CPU of the worker's tree from the first job."""

    proc: subprocess.Popen[bytes]
    cpu_from = 0

    def start_worker(self, mode: str, target: int) -> subprocess.Popen[bytes]:
        self.proc = super().start_worker(mode, target)
        return self.proc

    def runs(self, limit: float, target: int) -> tuple[float, float, bool]:
        self.wait_key(run.FIRST_KEY, limit)
        self.cpu_from = sum(ticks(p) for p in tree(self.proc.pid))
        return super().runs(limit, target)

    def stop_worker(self, proc: subprocess.Popen[bytes]) -> None:
        used = sum(ticks(p) for p in tree(proc.pid)) - self.cpu_from
        self.cpu = used / run.TICK
        super().stop_worker(proc)


def drain(system: str, jobs: int) -> dict[str, Any]:
    """One drain of ``jobs`` by ``system`` (``name`` or ``name:flags``)."""
    name, _, flags = system.partition(":")
    if flags:
        os.environ["BENCH_POSTROOM_TUNED"] = flags
    bench = Sweep(name, {"drain": jobs}, tuned=bool(flags))
    result = bench.drain()
    bench.flush()
    return {
        "rate": result["drain"],
        "done": result["drain_done"],
        "cpu_us": bench.cpu / jobs * 1e6,
    }


def main() -> None:
    """Drain with each system in turn, for some rounds; print a table of medians."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--systems",
        default="postroom-sqlite,postroom-sqlite:--concurrency 50,dramatiq",
        help="comma-separated; name:flags for postroom variants",
    )
    args = parser.parse_args()
    systems = args.systems.split(",")
    results: dict[str, list[dict[str, Any]]] = {s: [] for s in systems}
    for round_no in range(args.rounds):
        for system in systems:
            r = drain(system, args.jobs)
            results[system].append(r)
            load = os.getloadavg()[0]
            print(
                f"round {round_no + 1}: {system}: {r['rate']:,.0f} jobs/s"
                f"{'' if r['done'] else '*'}, {r['cpu_us']:.0f} us CPU per job "
                f"(load {load:.1f})",
                file=sys.stderr,
                flush=True,
            )
    print(f"\nmedian of {args.rounds} rounds, {args.jobs:,} jobs\n")
    print("| system | drain (jobs/s) | worker CPU per job (µs) | rounds (jobs/s) |")
    print("|---|---:|---:|---|")
    for system, rs in results.items():
        rate = statistics.median(r["rate"] for r in rs)
        cpu = statistics.median(r["cpu_us"] for r in rs)
        each = ", ".join(f"{r['rate']:,.0f}" for r in rs)
        print(f"| {system} | {rate:,.0f} | {cpu:.0f} | {each} |")


if __name__ == "__main__":
    main()
