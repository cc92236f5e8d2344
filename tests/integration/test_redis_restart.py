"""Redis: a server stopped and restarted mid-load loses nothing that was sent."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import postroom

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of the test's own, with an append-only file in ``dir``."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory, self.port = directory, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--appendonly", "yes",
                "--save", "",
                "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
            self.proc = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    srv = RedisServer(tmp_path, _free_port())
    srv.start()
    yield srv
    srv.stop()


def _producer(url: str, sent: list[str], stop: threading.Event) -> None:
    """Send until told to stop; keep only the ids that send() returned."""
    with postroom.connect(url) as c:
        n = 0
        while not stop.is_set():
            try:
                sent.append(c.send("load", {"n": n}))
                n += 1
            except postroom.BackendError:
                time.sleep(0.05)  # server down: try again


def test_redis_restart_mid_load_loses_nothing_sent(server: RedisServer) -> None:
    url = f"redis://127.0.0.1:{server.port}/0"
    with postroom.connect(url) as c:
        c.declare_queue("load", visibility_timeout=1.0)
        first = c.send_many("load", list(range(50)))
        held = c.receive("load", max_messages=10)  # leased, never acked
        assert len(held) == 10
        sent: list[str] = []
        stop = threading.Event()
        thread = threading.Thread(target=_producer, args=(url, sent, stop))
        thread.start()
        time.sleep(0.5)
        server.stop()
        before = len(sent)
        time.sleep(0.3)
        server.start()
        time.sleep(0.5)
        stop.set()
        thread.join(timeout=30)
        assert before > 0 and len(sent) > before, "load ran before and after"

        expected = set(first) | set(sent)
        seen: set[str] = set()
        while seen != expected:
            got = c.receive("load", max_messages=100, wait=3.0)
            if not got:
                break
            seen.update(d.id for d in got)
            assert c.ack_many(got) == []
        assert expected - seen == set(), "every message sent was delivered"
        assert {d.id for d in held} <= seen, "leases held across the restart expire"
