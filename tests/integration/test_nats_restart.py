"""NATS: a nats-server stopped and restarted mid-load loses nothing that was sent,
and clients reconnect on their own."""

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


class NatsServer:
    """A nats-server with JetStream of the test's own, storing in ``directory``."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory, self.port = directory, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "nats-server",
                "-a", "127.0.0.1",
                "-p", str(self.port),
                "-js",
                "-sd", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
            self.proc = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    if shutil.which("nats-server") is None:
        pytest.fail("nats-server is not installed (it runs the NATS backend's tests)")
    srv = NatsServer(tmp_path, _free_port())
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


def _consumer(url: str, seen: set[str], stop: threading.Event) -> None:
    """Long-poll and ack until told to stop, riding out the server's absence."""
    with postroom.connect(url) as c:
        while not stop.is_set():
            try:
                got = c.receive("load", max_messages=50, wait=0.5)
                seen.update(d.id for d in got)
                c.ack_many(got)
            except (postroom.BackendError, postroom.LeaseLost):
                time.sleep(0.05)


def test_nats_restart_mid_load_loses_nothing_sent(server: NatsServer) -> None:
    url = f"nats://127.0.0.1:{server.port}"
    with postroom.connect(url) as c:
        c.declare_queue("load", visibility_timeout=1.0)
        first = c.send_many("load", list(range(50)))
        held = c.receive("load", max_messages=10)  # leased, never acked
        assert len(held) == 10
        sent: list[str] = []
        seen: set[str] = set()
        stop = threading.Event()
        threads = [
            threading.Thread(target=_producer, args=(url, sent, stop)),
            threading.Thread(target=_consumer, args=(url, seen, stop)),
        ]
        for t in threads:
            t.start()
        time.sleep(0.5)
        server.stop()
        before = (len(sent), len(seen))
        time.sleep(0.3)
        server.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            len(sent) > before[0] + 20 and len(seen) > before[1] + 20
        ):
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert before[0] > 0 and len(sent) > before[0], "sends before and after"
        assert before[1] > 0 and len(seen) > before[1], "receives before and after"

        expected = set(first) | set(sent)
        while not expected <= seen:
            got = c.receive("load", max_messages=100, wait=3.0)
            if not got:
                break
            seen.update(d.id for d in got)
            c.ack_many(got)
        assert expected - seen == set(), "every message sent was delivered"
        assert {d.id for d in held} <= seen, "leases held across the restart expire"
        # The client that lived through the restart still works on its own.
        mid = c.send("after", "x")
        [d] = c.receive("after", wait=2.0)
        assert d.id == mid
        c.ack(d)
