"""RabbitMQ: a broker stopped and restarted mid-load loses nothing that was sent,
clients reconnect on their own, and a lease held across the restart is lost (its
message comes back) instead of being acked blindly.

The broker is a node of the test's own (its own node name, ports, database and
log folders under ``tmp_path``, no plugins), started here and stopped by pid.
"""

from __future__ import annotations

import os
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

_SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"  # not the wrapper that su's


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RabbitNode:
    """A rabbitmq-server node with its database in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port, self.dist_port = _free_port(), _free_port()
        self.name = f"postroomtest{os.getpid()}x{self.port}@localhost"
        self.proc: subprocess.Popen[bytes] | None = None
        (directory / "home").mkdir(exist_ok=True)
        (directory / "enabled_plugins").write_text("[].\n")

    def _env(self) -> dict[str, str]:
        d = self.directory
        return {
            **os.environ,
            "HOME": str(d / "home"),  # the node's own Erlang cookie
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"),
            "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(d / "plugins"),
            "RABBITMQ_PID_FILE": str(d / "pid"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq"),
        }

    def start(self) -> None:
        log = self.directory / "server.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [_SERVER], env=self._env(), stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited: see {log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("rabbitmq-server did not start within 60 s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)  # the script stops the node
            self.proc.wait(timeout=60)
            self.proc = None


@pytest.fixture
def node(tmp_path: Path) -> Iterator[RabbitNode]:
    if not os.access(_SERVER, os.X_OK) or shutil.which("erl") is None:
        pytest.fail(f"{_SERVER} (and erl) are needed: apt-get install rabbitmq-server")
    srv = RabbitNode(tmp_path)
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
                time.sleep(0.1)  # broker down: try again


def test_rabbitmq_restart_mid_load_loses_nothing_sent(node: RabbitNode) -> None:
    url = f"amqp://guest:guest@127.0.0.1:{node.port}/?prefix=restart"
    sent: list[str] = []
    stop = threading.Event()
    with postroom.connect(url) as c:
        c.declare_queue("load", visibility_timeout=60.0)
        held = c.send("load", {"held": True})
        [lease] = c.receive("load")
        assert lease.id == held
        producer = threading.Thread(target=_producer, args=(url, sent, stop))
        producer.start()
        while len(sent) < 50:
            time.sleep(0.01)
        node.stop()
        time.sleep(0.5)
        node.start()
        before = len(sent)
        deadline = time.monotonic() + 60
        while len(sent) < before + 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        producer.join(30)
        assert len(sent) >= before + 50, "the producer did not reconnect"
        # The lease ended with the connection: the message is back, not acked.
        with pytest.raises(postroom.LeaseLost):
            c.ack(lease)
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while not set(sent) | {held} <= seen and time.monotonic() < deadline:
            try:
                got = c.receive("load", max_messages=100, wait=1.0)
                seen.update(d.id for d in got)
                c.ack_many(got)
            except postroom.BackendError:
                time.sleep(0.1)  # this client's connection is still coming back
        assert set(sent) | {held} <= seen
        assert c.stats("load").ready == 0
