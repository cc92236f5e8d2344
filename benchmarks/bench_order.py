"""Throughput of an ordinary queue, the same with message groups, and with
priorities, on one backend, in one interleaved run.

    python benchmarks/bench_order.py [--url URL] [--messages N] [--rounds R]

Each round, for each workload, a fresh queue gets N no-op messages, then one
``postroom worker`` process (handler concurrency 100) drains it. Two figures:
N over the time from the worker's start until the last ack (polled every 10
ms), worker start-up included, and the rate from the first ack to the last (the
steady drain, start-up left out); compare the workloads with each other rather
than with ``postroom bench``'s drain rate. Workloads:

- ``plain``: no group, no priority (today's queue);
- ``groups``: the messages spread over 100 groups (message i in group i % 100,
  sent one by one: the groups interleave in the queue);
- ``group-runs``: 100 groups again, each group's messages sent together (the
  first N/100 in group 0, and so on): a claim walks past a whole run of its
  group's waiting messages to find the next group's head;
- ``priorities``: priorities 0 to 9 (message i has priority i % 10, sent one by
  one).

The send rate is of ``send_many`` calls of up to 500 messages where consecutive
messages share their options, 200 calls at a time, so it mostly counts calls for
the workloads that send one by one.

The workloads alternate within each round, so a change of the machine's load
hits them alike; the table gives the median of the rounds and the 1-minute load
average before and after. Without ``--url``: a temporary SQLite file. A backend
without groups or priorities (``NotSupported``) has that workload skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import postroom

APP = """
import postroom

app = postroom.App()

for name in ("plain", "groups", "group-runs", "priorities"):
    for rnd in range({rounds}):
        @app.handler(f"{{name}}-{{rnd}}", concurrency=100)
        async def noop(body: bytes) -> None:
            pass
"""

# Message i's (group, priority) in each workload, sent in the order of i.
WORKLOADS: dict[str, Callable[[int, int], tuple[str | None, int]]] = {
    "plain": lambda i, n: (None, 0),
    "groups": lambda i, n: (f"g{i % 100}", 0),
    "group-runs": lambda i, n: (f"g{i * 100 // n}", 0),
    "priorities": lambda i, n: (None, i % 10),
}


def fill(url: str, queue: str, n: int, workload: str) -> float:
    """Send ``n`` messages of ``workload`` to ``queue``, a ``send_many`` per run of
    equal options (at most 500), 200 calls at a time (SQLite shares one commit
    among the calls that queue up); return messages/s."""
    order = WORKLOADS[workload]
    runs: list[tuple[tuple[str | None, int], list[int]]] = []
    for i in range(n):
        key = order(i, n)
        if runs and runs[-1][0] == key and len(runs[-1][1]) < 500:
            runs[-1][1].append(i)
        else:
            runs.append((key, [i]))

    async def send_all() -> None:
        async with postroom.connect_async(url) as client:
            for at in range(0, len(runs), 200):
                await asyncio.gather(
                    *(
                        client.send_many(queue, bodies, group=group, priority=prio)
                        for (group, prio), bodies in runs[at : at + 200]
                    )
                )

    started = time.perf_counter()
    asyncio.run(send_all())
    return n / (time.perf_counter() - started)


def drain(
    client: postroom.Client, url: str, folder: Path, queue: str, n: int
) -> tuple[float, float]:
    """Start one worker process; return ``n`` over the time until all are acked,
    and the rate from the first ack seen to the last."""
    env = {**os.environ}
    env.pop("POSTROOM_URL", None)
    cmd = [sys.executable, "-m", "postroom", "worker", "order_app:app", "--url", url]
    cmd += ["--processes", "1", "--queues", queue]
    started = time.perf_counter()
    worker = subprocess.Popen(cmd, cwd=folder, env=env, stderr=subprocess.DEVNULL)
    try:
        first: tuple[float, int] | None = None
        while (acked := client.counters([queue])[queue]["acked"]) < n:
            now = time.perf_counter()
            if first is None and acked:
                first = (now, acked)
            if now - started > 600:
                raise RuntimeError(f"{queue}: not drained in 10 minutes")
            time.sleep(0.01)
        ended = time.perf_counter()
        at, done = first or (started, 0)
        return n / (ended - started), (n - done) / max(ended - at, 1e-6)
    finally:
        worker.terminate()
        worker.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="backend URL (default: a temporary SQLite file)")
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="postroom-bench-order-") as tmp:
        folder = Path(tmp)
        (folder / "order_app.py").write_text(APP.format(rounds=args.rounds))
        url = args.url or f"sqlite:///{folder}/bench.db"
        load_before = os.getloadavg()[0]
        sends: dict[str, list[float]] = {w: [] for w in WORKLOADS}
        drains: dict[str, list[float]] = {w: [] for w in WORKLOADS}
        steady: dict[str, list[float]] = {w: [] for w in WORKLOADS}
        with postroom.connect(url) as client:
            for rnd in range(args.rounds):
                for workload in WORKLOADS:
                    queue = f"{workload}-{rnd}"
                    try:
                        sends[workload].append(
                            fill(url, queue, args.messages, workload)
                        )
                    except postroom.NotSupported:
                        continue
                    total, rate = drain(client, url, folder, queue, args.messages)
                    drains[workload].append(total)
                    steady[workload].append(rate)
        load_after = os.getloadavg()[0]
    print(f"{url.split(':')[0]}, {args.messages} messages, {args.rounds} rounds")
    head = f"{'workload':<12} {'send_many msg/s':>16} {'drain msg/s':>12}"
    print(f"{head} {'from 1st ack':>13}")
    for workload in WORKLOADS:
        if not drains[workload]:
            print(f"{workload:<12} {'not supported':>16}")
            continue
        send = statistics.median(sends[workload])
        rate = statistics.median(drains[workload])
        held = statistics.median(steady[workload])
        print(f"{workload:<12} {send:>16,.0f} {rate:>12,.0f} {held:>13,.0f}")
    print(f"load average (1 min): {load_before:.2f} before, {load_after:.2f} after")


if __name__ == "__main__":
    main()
