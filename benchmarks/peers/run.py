"""postroom beside Celery, RQ, Dramatiq, arq, Taskiq and Huey on one Redis server.

Install the peers as ``requirements.txt`` beside this file says, then (one run,
every system, both tables at the end)::

    python benchmarks/peers/run.py [--only postroom,huey] [--quick] [--scale 0.5]
                                   [--repeat 3]
                                   [--modes defaults,tuned] [--json out.json]
                                   [--workloads send,drain,latency,failing,idle]

Every system runs twice: with its **defaults** (the worker command with no flags,
tasks declared without concurrency arguments) and **tuned** (the flags each
``bench_*.py`` names). Every job does the same one I/O call, a Redis ``INCR``
(awaited where the library runs ``async def`` jobs; see ``_probe.py``), which also
counts job runs across worker processes. Each system has its own Redis database,
flushed before each workload; ``postroom-sqlite`` keeps its messages in a SQLite
file and its job's ``INCR`` in Redis. The workloads:

1. ``send``: 5,000 jobs sent one by one with the library's sync call where it has
   one (postroom: ``postroom.connect(url).send``), and 20,000 in bulk (its batch
   call, or concurrent sends where it has none); defaults only (no worker runs);
2. ``drain``: 20,000 queued jobs run by the worker (first to last job run);
3. ``latency``: send to start of the job at 200 jobs/s offered, p50 and p99;
4. ``failing``: 2,000 always-failing jobs through 3 retries (4 runs each) to the
   dead/failed store, jobs/s from the bulk send to the last run;
5. ``idle``: the worker's CPU (all its processes) over 5 s with nothing to do;
   defaults only.

A workload that does not finish within its limit is reported from the runs it
made (``*`` in the table). With ``--repeat N`` the systems run N times in turn
and the tables give the median of each figure (the machine is shared: single runs
are noisy).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

REDIS = "redis://127.0.0.1:6379"
SQLITE_DIR = Path(tempfile.gettempdir()) / "postroom-peers"
# name: (module, Redis database of the broker and the job, backend URL or None)
SYSTEMS: dict[str, tuple[str, int, str | None]] = {
    "postroom": ("bench_postroom", 1, None),
    "postroom-sqlite": (
        "bench_postroom",
        12,
        os.environ.get("BENCH_SQLITE_URL", f"sqlite:///{SQLITE_DIR}/postroom.db"),
    ),
    "celery": ("bench_celery", 2, None),
    "rq": ("bench_rq", 3, None),
    "dramatiq": ("bench_dramatiq", 4, None),
    "arq": ("bench_arq", 5, None),
    "taskiq": ("bench_taskiq", 6, None),
    "huey": ("bench_huey", 11, None),
}
COUNT_KEY, FIRST_KEY, LAST_KEY = "bench:count", "bench:first", "bench:last"
LAT_KEY, STARTED_KEY = "bench:lat", "bench:started"
DRAIN_LIMIT, FAIL_LIMIT, IDLE_SECONDS = 40.0, 40.0, 5.0
TICK = os.sysconf("SC_CLK_TCK")


def session_cpu(sid: int) -> dict[int, int]:
    """CPU ticks used so far by each live process of session ``sid`` and by
    every descendant of process ``sid`` (``postroom worker`` starts its
    children in sessions of their own)."""
    stats: dict[int, tuple[int, int, int]] = {}  # pid: (parent, session, ticks)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # fields 4, 6, 14 and 15: parent, session, utime, stime
        used = int(fields[11]) + int(fields[12])
        stats[int(entry.name)] = (int(fields[1]), int(fields[3]), used)
    ours = {pid for pid, (_, session, _) in stats.items() if session == sid}
    grown = True
    while grown:
        more = {pid for pid, (parent, _, _) in stats.items() if parent in ours}
        grown = not more <= ours
        ours |= more
    return {pid: stats[pid][2] for pid in ours}


class Bench:
    """Runs the workloads of one system, with its defaults or tuned."""

    def __init__(self, name: str, sizes: dict[str, int], tuned: bool) -> None:
        module, db, url = SYSTEMS[name]
        self.probe_url = f"{REDIS}/{db}"
        self.sqlite = url is not None
        os.environ["BENCH_URL"] = url or self.probe_url
        os.environ["BENCH_REDIS"] = self.probe_url
        sys.modules.pop(module, None)  # BENCH_URL is read at import
        self.mod: Any = importlib.import_module(module)
        self.name = name
        self.sizes = sizes
        self.tuned = tuned
        self.redis = redis.Redis.from_url(self.probe_url)

    def flush(self) -> None:
        self.redis.flushdb()
        if self.sqlite:
            shutil.rmtree(SQLITE_DIR, ignore_errors=True)
            SQLITE_DIR.mkdir(parents=True)

    def commands(self) -> int:
        """Commands the server has processed so far (all databases, all clients)."""
        return int(self.redis.info("stats")["total_commands_processed"])

    def start_worker(self, mode: str, target: int) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "BENCH_MODE": mode,
            "BENCH_TARGET": str(target),
        }
        return subprocess.Popen(
            self.mod.worker_cmd(sys.executable, self.tuned),
            cwd=HERE,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_key(self, key: str, limit: float) -> float | None:
        """The float in ``key`` once set, or ``None`` after ``limit`` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            value = self.redis.get(key)
            if value is not None:
                return float(value)
            time.sleep(0.02)
        return None

    def stop_worker(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # children left behind
        proc.wait()

    def started(self, mode: str, target: int) -> subprocess.Popen[bytes]:
        """A worker that has run the warm-up job."""
        proc = self.start_worker(mode, target)
        self.mod.warmup()
        if self.wait_key(STARTED_KEY, 60) is None:
            self.stop_worker(proc)
            raise TimeoutError(f"{self.name}: the worker did not start")
        return proc

    def runs(self, limit: float, target: int) -> tuple[float, float, bool]:
        """(first run, last run, finished) of a workload of ``target`` runs."""
        last = self.wait_key(LAST_KEY, limit)
        first = float(self.redis.get(FIRST_KEY) or 0.0)
        if last is not None:
            return first, last, True
        return first, time.time(), False

    # -- the workloads -------------------------------------------------------------

    def send(self, bulk: bool) -> float:
        n = self.sizes["bulk" if bulk else "one"]
        self.flush()
        took = self.mod.enqueue_bulk(n) if bulk else self.mod.enqueue_one(n)
        return n / took

    def drain(self) -> dict[str, Any]:
        n = self.sizes["drain"]
        self.flush()
        self.mod.enqueue_bulk(n)
        before = self.commands()
        proc = self.start_worker("drain", n)
        try:
            first, last, done = self.runs(DRAIN_LIMIT, n)
            count = int(self.redis.get(COUNT_KEY) or 0)
        finally:
            self.stop_worker(proc)
        rate = (count - 1) / (last - first) if last > first else 0.0
        return {
            "drain": rate,
            "drain_done": done,
            "commands_per_msg": (self.commands() - before) / max(count, 1),
        }

    def latency(self) -> dict[str, Any]:
        n, rate = self.sizes["latency"], 200.0
        self.flush()
        proc = self.started("latency", n)
        try:
            self.redis.delete(COUNT_KEY)
            start = time.time() + 0.2
            self.mod.send_paced([start + i / rate for i in range(n)])
            self.runs(15, n)
            lat = sorted(float(x) for x in self.redis.lrange(LAT_KEY, 0, -1))
        finally:
            self.stop_worker(proc)
        if not lat:
            return {}
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return {
            "p50_ms": statistics.median(lat) * 1000,
            "p99_ms": p99 * 1000,
            "latency_done": len(lat) >= n,
        }

    def failing(self) -> dict[str, Any]:
        n = self.sizes["failing"]
        self.flush()
        proc = self.started("fail", n * 4)
        try:
            self.redis.delete(COUNT_KEY, FIRST_KEY)
            start = time.time()
            self.mod.enqueue_bulk(n, failing=True)
            _, last, done = self.runs(FAIL_LIMIT, n * 4)
            count = int(self.redis.get(COUNT_KEY) or 0)
            deadline, dead = time.monotonic() + (30 if done else 0), 0
            while True:
                dead = self.mod.dead_count()
                if dead >= n or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        finally:
            self.stop_worker(proc)
        rate = count / 4 / (last - start)
        return {"fail_rate": rate, "fail_done": done, "dead": dead}

    def idle(self) -> dict[str, Any]:
        self.flush()
        proc = self.started("drain", 10**9)
        try:
            time.sleep(1.0)
            before, t0 = session_cpu(proc.pid), time.monotonic()
            time.sleep(IDLE_SECONDS)
            after = session_cpu(proc.pid)
            took = time.monotonic() - t0
            used = sum(t - before.get(pid, 0) for pid, t in after.items()) / TICK
        finally:
            self.stop_worker(proc)
        return {"idle_cpu": used / took * 100}

    def run(self, workloads: set[str]) -> dict[str, Any]:
        """Run the chosen workloads; figures of the others are left out."""
        row: dict[str, Any] = {"system": self.name, "tuned": self.tuned}
        if "send" in workloads and not self.tuned:
            row["send_one"] = self.send(bulk=False)
            row["send_bulk"] = self.send(bulk=True)
        for name in ("drain", "latency", "failing", "idle"):
            if name in workloads and not (self.tuned and name == "idle"):
                row.update(getattr(self, name)())
        self.flush()
        return row


COLUMNS = [
    ("one-by-one send (msg/s)", "send_one", "{:,.0f}", None),
    ("bulk send (msg/s)", "send_bulk", "{:,.0f}", None),
    ("drain (msg/s)", "drain", "{:,.0f}", "drain_done"),
    ("p50 at 200/s (ms)", "p50_ms", "{:.2f}", "latency_done"),
    ("p99 at 200/s (ms)", "p99_ms", "{:.2f}", "latency_done"),
    ("failing x4 (jobs/s)", "fail_rate", "{:,.0f}", "fail_done"),
    ("dead letters", "dead", "{:,.0f}", None),
    ("idle CPU (%)", "idle_cpu", "{:.2f}", None),
]


def table(rows: list[dict[str, Any]]) -> str:
    """The results as a Markdown table (``*``: the workload did not finish)."""
    lines = [
        "| system | " + " | ".join(c[0] for c in COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    for r in rows:
        cells = []
        for _, key, spec, done in COLUMNS:
            cell = spec.format(r[key]) if key in r else "-"
            if done and key in r and not r.get(done, True):
                cell += "*"
            cells.append(cell)
        lines.append(f"| {r['system']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each figure over several runs of one system."""
    row = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, bool):
            row[key] = all(r.get(key, False) for r in runs)
        elif isinstance(value, (int, float)):
            row[key] = statistics.median(r[key] for r in runs if key in r)
    return row


def main() -> None:
    """Run the chosen systems in both modes and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SYSTEMS))
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="sizes times this (latency: 1,000)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds (median)")
    parser.add_argument("--modes", default="defaults,tuned")
    parser.add_argument(
        "--workloads", default="send,drain,latency,failing,idle", help="which to run"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sizes = {"one": 5_000, "bulk": 20_000, "drain": 20_000, "latency": 1_000}
    sizes["failing"] = 2_000
    if args.quick:
        sizes = {k: v // 10 for k, v in sizes.items()}
    elif args.scale != 1.0:
        sizes = {
            k: v if k == "latency" else round(v * args.scale) for k, v in sizes.items()
        }
    names, modes = args.only.split(","), args.modes.split(",")
    workloads = set(args.workloads.split(","))
    runs: dict[str, list[dict[str, Any]]] = {}
    for round_no in range(args.repeat):
        for mode in modes:
            for name in names:
                print(f"round {round_no + 1}: {name} {mode} ...", file=sys.stderr)
                try:
                    row = Bench(name, sizes, mode == "tuned").run(workloads)
                except Exception as exc:  # one system's failure spoils no other
                    print(f"  failed: {exc!r}", file=sys.stderr)
                    continue
                print(json.dumps(row), file=sys.stderr, flush=True)
                runs.setdefault(f"{mode}:{name}", []).append(row)
    medians = {key: median_row(rs) for key, rs in runs.items()}
    if args.json:
        args.json.write_text(json.dumps({"median": medians, "runs": runs}, indent=2))
    for mode in modes:
        print(f"\n{mode} (median of {args.repeat})\n")
        print(table([medians[k] for k in medians if k.startswith(mode + ":")]))


if __name__ == "__main__":
    main()
