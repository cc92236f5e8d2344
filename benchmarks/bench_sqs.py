"""SQS through boto3: postroom's SQS-compatible endpoint against moto's server.

    python benchmarks/bench_sqs.py [--messages N] [--concurrency C]
        [--targets sqlite,redis,moto] [--json]

Each target is one server process on a free loopback port: ``postroom serve``
(``--no-push``, access log off) on SQLite in a temporary directory or on Redis
(127.0.0.1:6379, a key prefix of its own, deleted afterwards), and, when
``pip install 'moto[server]'`` worked, ``moto_server`` (moto's in-memory SQS
emulation, the usual test double). The same boto3 code drives each one from
this process with ``C`` threads sharing one client (``max_pool_connections=C``):

- send: SendMessage, one message per request;
- send_batch: SendMessageBatch of 10;
- receive_delete: ReceiveMessage (1) then DeleteMessage, per message;
- receive10_delete_batch: ReceiveMessage (10) then DeleteMessageBatch.

Rates are messages per second. The server's CPU time per message is read from
``/proc/<pid>/stat``: client and server share the machine's cores, and boto3
costs more CPU per request than either server does, so the rates are a floor
and the CPU column is what a dedicated server core would spend.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

MEASURES = ("send", "send_batch", "receive_delete", "receive10_delete_batch")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server at {url} did not start")


@contextmanager
def postroom_server(url: str) -> Iterator[tuple[str, int]]:
    """``postroom serve`` on ``url``: yields its base URL and pid."""
    port = free_port()
    cli = [sys.executable, "-c", "from postroom.cli import main; main()"]
    cmd = [*cli, "serve", "--url", url, "--port", str(port), "--no-push"]
    proc = subprocess.Popen([*cmd, "--log-level", "warning"])
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(base + "/healthz", proc)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def moto_server() -> Iterator[tuple[str, int]]:
    """``moto_server`` (moto's standalone server): yields its base URL and pid."""
    exe = shutil.which("moto_server") or str(
        Path(sys.executable).with_name("moto_server")
    )
    if not Path(exe).exists():
        raise FileNotFoundError("moto_server: pip install 'moto[server]'")
    port = free_port()
    proc = subprocess.Popen(
        [exe, "-p", str(port), "-H", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(base + "/moto-api/", proc)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _spread(threads: int, jobs: int, job: Callable[[int], int]) -> tuple[float, int]:
    """Run ``job(i)`` for i in range(jobs) on ``threads`` threads; seconds and the
    sum of what the jobs returned (messages handled)."""
    counter = iter(range(jobs))
    lock = threading.Lock()
    done = [0]

    def worker() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            n = job(i)
            with lock:
                done[0] += n

    started = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - started, done[0]


def _consume(sqs: Any, url: str, n: int, c: int, k: int) -> tuple[float, int]:
    """Receive ``k`` at a time and delete (one by one for k=1, else a batch)."""
    remaining = [n]
    lock = threading.Lock()

    def job(_: int) -> int:
        with lock:
            if remaining[0] <= 0:
                return 0
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=k).get(
            "Messages", []
        )
        if k == 1:
            for m in got:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        elif got:
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(got)
            ]
            sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        with lock:
            remaining[0] -= len(got)
        return len(got)

    # Enough jobs that every message is consumed even when receives come back short.
    return _spread(c, n * 2 // k + 4 * c, job)


def run_target(base: str, pid: int, n: int, c: int) -> dict[str, Any]:
    """Every measure against the server at ``base`` (process ``pid``)."""
    sqs = boto3.client(
        "sqs",
        endpoint_url=base,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(max_pool_connections=c, retries={"max_attempts": 1}),
    )
    tag = uuid.uuid4().hex[:8]
    one, ten, warm = (
        sqs.create_queue(QueueName=f"bench-{kind}-{tag}")["QueueUrl"]
        for kind in ("one", "ten", "warm")
    )
    body = json.dumps({"image": "cat.png", "sizes": [64, 256, 1024]})
    _spread(c, 100, lambda _: sqs.send_message(QueueUrl=warm, MessageBody=body) and 1)

    def send(_: int) -> int:
        sqs.send_message(QueueUrl=one, MessageBody=body)
        return 1

    def send_batch(i: int) -> int:
        entries = [{"Id": str(j), "MessageBody": body} for j in range(10)]
        sqs.send_message_batch(QueueUrl=ten, Entries=entries)
        return 10

    phases: dict[str, Callable[[], tuple[float, int]]] = {
        "send": lambda: _spread(c, n, send),
        "send_batch": lambda: _spread(c, n // 10, send_batch),
        "receive_delete": lambda: _consume(sqs, one, n, c, 1),
        "receive10_delete_batch": lambda: _consume(sqs, ten, n, c, 10),
    }
    out: dict[str, Any] = {}
    for name, phase in phases.items():
        before = cpu_seconds(pid)
        seconds, handled = phase()
        if handled < n:
            raise SystemExit(f"{name}: {handled} of {n} messages")
        out[f"{name}_per_s"] = handled / seconds
        out[f"{name}_server_cpu_ms"] = (cpu_seconds(pid) - before) / handled * 1000
    return out


def _redis_cleanup(prefix: str) -> None:
    import redis

    with redis.Redis(host="127.0.0.1", port=6379) as r:
        for key in r.scan_iter(match=f"{{{prefix}[:}}]*"):
            r.delete(key)


@contextmanager
def server_for(target: str, tmp: str, prefix: str) -> Iterator[tuple[str, int]]:
    """The server of ``target``: postroom on SQLite or Redis, or moto."""
    if target == "moto":
        with moto_server() as server:
            yield server
        return
    url = (
        f"sqlite:///{Path(tmp) / 'bench.db'}"
        if target == "sqlite"
        else f"redis://127.0.0.1:6379/0?prefix={prefix}"
    )
    try:
        with postroom_server(url) as server:
            yield server
    finally:
        if target == "redis":
            _redis_cleanup(prefix)


def run(targets: list[str], n: int, c: int) -> dict[str, dict[str, Any]]:
    """Measure each target in turn (moto is skipped when it is not installed)."""
    results: dict[str, dict[str, Any]] = {}
    for target in targets:
        with tempfile.TemporaryDirectory() as tmp:
            prefix = "benchsqs" + uuid.uuid4().hex[:8]
            try:
                with server_for(target, tmp, prefix) as (base, pid):
                    results[target] = run_target(base, pid, n, c)
            except FileNotFoundError as exc:
                print(f"skipping {target}: {exc}", file=sys.stderr)
    return results


def main() -> None:
    """Parse arguments, measure each target, print a table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--targets", default="sqlite,redis,moto")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    results = run(targets, args.messages, args.concurrency)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    header = "".join(f"{t + ' msg/s':>16}{'CPU ms':>8}" for t in results)
    print(f"{'measure':<24}{header}")
    for name in MEASURES:
        cells = "".join(
            f"{r[f'{name}_per_s']:>16,.0f}{r[f'{name}_server_cpu_ms']:>8.2f}"
            for r in results.values()
        )
        print(f"{name:<24}{cells}")
    print(
        f"({args.messages} messages, {args.concurrency} threads, "
        f"{os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f})"
    )


if __name__ == "__main__":
    main()
