"""HTTP API throughput of ``postroom serve`` on loopback, driven by httpx.

    python benchmarks/bench_http.py [--url URL] [--messages N] [--concurrency C]

Starts ``postroom serve`` (one uvicorn process, SQLite in a temporary directory
unless ``--url`` is given) and measures from this process, with ``C`` concurrent
keep-alive connections:

- send: ``POST /v1/queues/{q}/messages``, one message per request (msg/s);
- batch send: ``POST /v1/queues/{q}/messages:batch`` with 100 messages (msg/s);
- receive+ack, one by one: ``receive`` (max_messages=1) then ``ack`` (msg/s);
- receive+ack, batched: ``receive`` (max_messages=10) then one ``ack`` per message;
- receive+ack:batch: ``receive`` (max_messages=10) then one ``ack:batch`` call.

Each measure also reports the server's CPU time per message (from
``/proc/<pid>/stat``): client and server share the machine's cores, and the httpx
client costs more CPU per request than the server does (its connection pool gets
slower past ~8 connections), so the throughput figures are a floor and the CPU
figure is what a dedicated server core would sustain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

NAMES = ("send", "batch_send", "receive_ack", "receive10_ack", "receive10_ack_batch")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(url: str, port: int) -> subprocess.Popen[bytes]:
    """``postroom serve`` without push, access log off; wait for /healthz."""
    cli = [sys.executable, "-c", "from postroom.cli import main; main()"]
    cmd = [*cli, "serve", "--url", url, "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--no-push", "--log-level", "warning"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not start")


async def _spread(concurrency: int, total: int, job: Any) -> float:
    """Run ``job(i)`` for i in range(total) on ``concurrency`` tasks; seconds."""
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            await job(i)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def bench_send(http: httpx.AsyncClient, q: str, n: int, c: int) -> float:
    """Single sends per second."""

    async def job(i: int) -> None:
        r = await http.post(f"/v1/queues/{q}/messages", json={"body": {"n": i}})
        r.raise_for_status()

    return n / await _spread(c, n, job)


async def bench_batch(http: httpx.AsyncClient, q: str, n: int, c: int) -> float:
    """Messages per second sent in batches of 100."""
    batch = {"messages": [{"body": {"n": i}} for i in range(100)]}

    async def job(i: int) -> None:
        r = await http.post(f"/v1/queues/{q}/messages:batch", json=batch)
        r.raise_for_status()

    return (n // 100) * 100 / await _spread(c, n // 100, job)


async def bench_consume(
    http: httpx.AsyncClient, q: str, n: int, c: int, k: int, batch_ack: bool = False
) -> float:
    """Messages per second received (``k`` per call) and acked one by one, or in
    one ``ack:batch`` call per receive."""
    done = 0

    async def worker() -> None:
        nonlocal done
        while done < n:
            r = await http.post(f"/v1/queues/{q}/receive", json={"max_messages": k})
            r.raise_for_status()
            messages = r.json()["messages"]
            if not messages:
                return
            if batch_ack:
                receipts = [m["receipt"] for m in messages]
                a = await http.post(
                    f"/v1/queues/{q}/ack:batch", json={"receipts": receipts}
                )
                a.raise_for_status()
                messages = []
                done += len(receipts)
            for m in messages:
                a = await http.post(
                    f"/v1/queues/{q}/ack", json={"receipt": m["receipt"]}
                )
                a.raise_for_status()
            done += len(messages)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(c)))
    elapsed = time.perf_counter() - started
    if done != n:
        raise SystemExit(f"consumed {done} of {n} messages")
    return n / elapsed


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(base: str, pid: int, n: int, c: int) -> dict[str, Any]:
    """Every measure against the server at ``base`` (process ``pid``)."""
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        await bench_send(http, "warmup", 200, c)
        out: dict[str, Any] = {"messages": n, "concurrency": c}
        measures = {
            "send": bench_send(http, "bench.single", n, c),
            "batch_send": bench_batch(http, "bench.batch", n, c),
            "receive_ack": bench_consume(http, "bench.single", n, c, 1),
            "receive10_ack": bench_consume(http, "bench.batch", n, c, 10),
        }
        for name, coro in measures.items():
            before = cpu_seconds(pid)
            out[f"{name}_per_s"] = await coro
            out[f"{name}_server_cpu_ms"] = (cpu_seconds(pid) - before) / n * 1000
        await bench_batch(http, "bench.batch2", n, c)  # fill, not measured
        before = cpu_seconds(pid)
        rate = await bench_consume(http, "bench.batch2", n, c, 10, batch_ack=True)
        out["receive10_ack_batch_per_s"] = rate
        out["receive10_ack_batch_server_cpu_ms"] = (cpu_seconds(pid) - before) / n * 1e3
        return out


def main() -> None:
    """Parse arguments, start the server, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="backend URL (default: SQLite in a temp dir)")
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        port = free_port()
        proc = start_server(url, port)
        try:
            base = f"http://127.0.0.1:{port}"
            result = asyncio.run(run(base, proc.pid, args.messages, args.concurrency))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    result["backend"] = url.split("://", 1)[0]
    result["cpus"] = os.cpu_count()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{'measure':<15} {'msg/s':>9} {'server CPU ms/msg':>18}")
    for name in NAMES:
        rate, cpu = result[f"{name}_per_s"], result[f"{name}_server_cpu_ms"]
        print(f"{name:<15} {rate:>9,.0f} {cpu:>18.3f}")
    print(
        f"({result['messages']} messages, {result['concurrency']} connections, "
        f"{result['backend']}, {result['cpus']} cpus, load {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
