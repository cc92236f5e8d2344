"""The consumer loop's own cost: CPU per job of one in-process worker.

    python benchmarks/bench_loop.py [--url memory://] [--messages N] [--rounds R]
                                    [--compare OTHER_SRC]

``send_many`` queues N messages with a small JSON body, then a :class:`Worker`
with the defaults (an ``async def`` handler taking ``dict[str, float]``, doing
nothing) runs in this process until it has handled all N. The figure is the
process's CPU time from the worker's start to the last handler run, divided by N:
the runtime's per-job work (claiming, decoding, calling, batching outcomes)
plus the backend client's, without a job's own I/O. CPU time depends much less on
the machine's load than wall time does, so it tells two versions apart on a shared
machine.

With ``--compare DIR`` each round runs this checkout's ``src`` and then ``DIR``
(another checkout's ``src``) in turn, each in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

QUEUE = f"bench-loop-{os.getpid()}"


async def _measure(url: str, n: int) -> tuple[float, float]:
    import anyio

    import postroom
    from postroom.client.core import AsyncClient
    from postroom.runtime.worker import Worker

    app = postroom.App(url)
    done = anyio.Event()
    count = 0

    @app.handler(QUEUE)
    async def job(body: dict[str, float]) -> None:
        nonlocal count
        count += 1
        if count == n:
            done.set()

    client = AsyncClient(url)
    await client.connect()
    try:
        await client.send_many(QUEUE, [{"t": 1.0}] * n)
        worker = Worker(app, client=client)
        async with anyio.create_task_group() as tg:
            wall, cpu = time.perf_counter(), time.process_time()
            tg.start_soon(worker.run)
            await done.wait()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            worker.stop()
        await client.delete_queue(QUEUE)
    finally:
        await client.aclose()
    return cpu / n, wall / n


def _child(url: str, n: int) -> None:
    import anyio

    cpu, wall = anyio.run(_measure, url, n)
    print(f"{cpu * 1e6:.1f} {wall * 1e6:.1f}")


def _run(src: str, url: str, n: int) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--url", url, "--messages", str(n)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout.split()
    return float(out[0]), float(out[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="memory://")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", help="another checkout's src directory")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.url, args.messages)
        return
    here = str(Path(__file__).resolve().parent.parent / "src")
    sources = [here] + ([args.compare] if args.compare else [])
    results: dict[str, list[tuple[float, float]]] = {s: [] for s in sources}
    for r in range(args.rounds):
        for src in sources:
            cpu, wall = _run(src, args.url, args.messages)
            results[src].append((cpu, wall))
            load = os.getloadavg()[0]
            print(
                f"round {r + 1} {src}: {cpu:.1f} us CPU, {wall:.1f} us wall per "
                f"job (load {load:.1f})"
            )
    for src, rows in results.items():
        cpu = statistics.median(c for c, _ in rows)
        wall = statistics.median(w for _, w in rows)
        print(
            f"{src}: median {cpu:.1f} us CPU and {wall:.1f} us wall per job "
            f"({args.messages:,} jobs, {args.url})"
        )


if __name__ == "__main__":
    main()
