"""Topics and push throughput: publish fan-out, and webhook delivery.

1. **Fan-out**: publish ``--events`` events to a topic with N subscriptions (N in
   ``--fanout``) and report events published per second and copies stored per
   second.
2. **Webhook push**: fill ``--subscriptions`` push subscriptions with ``--events``
   events each, then run one :class:`~postroom.runtime.push.Pusher` until every queue is
   empty; the endpoint is a uvicorn receiver in another process answering 204.
   Reports deliveries (signed POST + ack) per second, and the pusher's CPU time
   per delivery (steadier than wall-clock time on a busy machine).

Usage::

    python benchmarks/bench_push.py --url sqlite:///bench.db
    python benchmarks/bench_push.py --url redis://127.0.0.1:6379/0 --events 2000
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import httpx

from postroom import AsyncClient
from postroom.runtime.egress import EgressPolicy
from postroom.runtime.push import Pusher

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def receiver_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A minimal ASGI endpoint: read the body, answer 204."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def run_receiver(port: int) -> None:
    """Serve :func:`receiver_app` on 127.0.0.1:``port`` (child process)."""
    import uvicorn

    uvicorn.run(
        receiver_app, host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fresh_url(url: str) -> str:
    """The URL, isolated per run (a new SQLite file, a Redis key prefix)."""
    uid = "bench" + uuid.uuid4().hex[:8]
    if url.startswith("sqlite"):
        return f"sqlite:///{tempfile.mkdtemp()}/{uid}.db"
    if url.startswith("memory"):
        return f"memory://{uid}"
    if url.startswith(("redis", "valkey")):
        sep = "&" if "?" in url else "?"
        return f"{url}{sep}prefix={uid}"
    return url


async def bench_fanout(url: str, events: int, fanout: int) -> dict[str, float]:
    """Publish ``events`` events to a topic with ``fanout`` subscriptions."""
    async with AsyncClient(fresh_url(url)) as client:
        for i in range(fanout):
            await client.create_subscription("bench.fanout", f"s{i}")
        body = {"image": "cat.png", "sizes": [64, 256, 1024]}
        start = time.perf_counter()
        for _ in range(events):
            await client.publish("bench.fanout", body)
        elapsed = time.perf_counter() - start
        stats = await client.stats()
        copies = sum(s.ready for s in stats.values())
    assert copies == events * fanout, (copies, events, fanout)
    return {"events_s": events / elapsed, "copies_s": copies / elapsed}


async def _wait_port(port: int) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(200):
            try:
                await http.get(f"http://127.0.0.1:{port}/")
                return
            except httpx.TransportError:
                await anyio.sleep(0.05)
    raise RuntimeError("the receiver did not start")


async def bench_webhook(
    url: str, events: int, subscriptions: int, concurrency: int
) -> dict[str, float]:
    """Deliver ``events`` to each of ``subscriptions`` push subscriptions."""
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "--receiver", str(port)]
    )
    try:
        await _wait_port(port)
        async with AsyncClient(fresh_url(url)) as client:
            subs = [
                await client.create_subscription(
                    "bench.push", f"hook{i}", push_endpoint=f"http://127.0.0.1:{port}/"
                )
                for i in range(subscriptions)
            ]
            for _ in range(events):
                await client.publish("bench.push", {"n": 1})
            pusher = Pusher(
                client,
                concurrency=concurrency,
                refresh=60.0,
                poll=0.2,
                egress=EgressPolicy.parse("127.0.0.1"),  # the local receiver
            )
            total = events * subscriptions
            start, cpu = time.perf_counter(), time.process_time()
            async with anyio.create_task_group() as tg:
                tg.start_soon(pusher.run)
                while pusher.delivered < total:
                    await anyio.sleep(0.01)
                elapsed = time.perf_counter() - start
                cpu = time.process_time() - cpu
                pusher.stop()
            left = sum([(await client.stats(s.queue)).ready for s in subs])
        assert pusher.failed == 0 and left == 0, (pusher.failed, left)
        return {"deliveries_s": total / elapsed, "cpu_us": cpu / total * 1e6}
    finally:
        child.terminate()
        child.wait()


def main(argv: list[str] | None = None) -> None:
    """Run both benchmarks and print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="sqlite:///bench.db")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--fanout", default="1,4,16")
    parser.add_argument("--subscriptions", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.receiver:
        run_receiver(args.receiver)
        return
    scheme = args.url.split(":", 1)[0]
    for n in (int(x) for x in args.fanout.split(",")):
        r = anyio.run(bench_fanout, args.url, args.events, n)
        print(
            f"{scheme:8} fan-out  1 -> {n:2} subscriptions: "
            f"{r['events_s']:8.0f} events/s  {r['copies_s']:8.0f} copies/s"
        )
    w = anyio.run(
        bench_webhook, args.url, args.events, args.subscriptions, args.concurrency
    )
    print(
        f"{scheme:8} webhook  {args.subscriptions} subscriptions x {args.events} "
        f"events, concurrency {args.concurrency}: {w['deliveries_s']:8.0f} "
        f"deliveries/s, {w['cpu_us']:.0f} µs pusher CPU per delivery"
    )


if __name__ == "__main__":
    main()
