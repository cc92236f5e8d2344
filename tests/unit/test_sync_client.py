"""The sync client's own thread: closing, and never keeping a process alive."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

import postroom


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_unclosed_client_does_not_keep_the_process_alive(
    scheme: str, tmp_path: Path
) -> None:
    url = "memory://" if scheme == "memory" else f"sqlite:///{tmp_path}/x.db"
    script = (
        "import postroom\n"
        f"c = postroom.connect({url!r})\n"
        "c.send('q', {'n': 1})\n"
        "print(c.stats('q').ready)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1"
    if scheme == "sqlite":
        with postroom.connect(url) as c:
            assert c.stats("q").ready == 1


def test_closed_client_says_so_and_closes_once() -> None:
    c = postroom.connect("memory://closed-client")
    c.close()
    c.close()
    with pytest.raises(postroom.ConfigurationError, match="closed"):
        c.send("q", 1)


@pytest.mark.parametrize("scheme", ["memory", "sqlite"])
def test_client_shared_by_threads_serves_every_call(
    scheme: str, tmp_path: Path
) -> None:
    url = "memory://threads" if scheme == "memory" else f"sqlite:///{tmp_path}/t.db"
    received: list[postroom.Delivery] = []
    errors: list[BaseException] = []

    def guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                errors.append(exc)

        return run

    with postroom.connect(url) as c:
        c.declare_queue("in")

        def consume() -> None:  # long waits, while other threads send
            while len(received) < 40:
                got = c.receive("in", max_messages=10, wait=5.0)
                received.extend(got)
                c.ack_many(got)

        def produce() -> None:
            for i in range(10):
                c.send("in", {"n": i})
                c.stats("in")

        threads = [threading.Thread(target=guarded(consume))]
        threads += [threading.Thread(target=guarded(produce)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert not any(t.is_alive() for t in threads)
        assert len({d.id for d in received}) == 40
        assert c.stats("in").in_flight == 0


def test_client_called_from_inside_an_event_loop() -> None:
    with postroom.connect("memory://inside-loop") as c:

        async def main() -> str:
            return c.send("q", {"n": 1})

        mid = asyncio.run(main())
        [d] = c.receive("q")
        assert d.id == mid
