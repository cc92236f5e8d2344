"""Real ``postroom worker`` processes over the durable backends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import postroom
from tests.contract.conftest import _redis_cleanup, durable_url

__all__ = ["Workers", "_redis_cleanup", "durable_url", "wait_until"]

POSTROOM = str(Path(sys.executable).with_name("postroom"))

HANDLERS = """
import os
import signal
import time
from pathlib import Path

import postroom

app = postroom.App()
MARKS = Path(os.environ["POSTROOM_TEST_MARKS"])


@app.handler("jobs", concurrency=2)
def handle(msg: postroom.Message) -> None:
    action = msg.json()["action"]
    (MARKS / f"{msg.id}.{msg.attempts}.start").write_text(str(os.getpid()))
    if action == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "hang" or (action == "hang_first" and msg.attempts == 1):
        time.sleep(60)
    (MARKS / f"{msg.id}.done").write_text(str(msg.attempts))
"""


def wait_until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)


class Workers:
    """Starts ``postroom worker tasks:app`` processes in a test folder."""

    def __init__(self, folder: Path, url: str) -> None:
        self.folder = folder
        self.url = url
        self.marks = folder / "marks"
        self.marks.mkdir()
        (folder / "tasks.py").write_text(HANDLERS)
        self.procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[Path] = []

    def start(self, *args: str, target: str = "tasks:app") -> subprocess.Popen[bytes]:
        """Start one worker command; its output goes to a log file.

        One worker process unless ``args`` say how many (the command's default is
        one per CPU, under a parent): these tests kill and signal that process.
        """
        if "--processes" not in args:
            args = ("--processes", "1", *args)
        log = self.folder / f"worker-{len(self.procs)}.log"
        self._logs.append(log)
        env = {**os.environ, "POSTROOM_TEST_MARKS": str(self.marks)}
        env.pop("POSTROOM_URL", None)
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [POSTROOM, "worker", target, "--url", self.url, *args],
                cwd=self.folder,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.procs.append(proc)
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        """What a worker printed so far."""
        return self._logs[self.procs.index(proc)].read_text()

    def started(self, message_id: str, attempt: int) -> bool:
        """Whether a handler began ``attempt`` of the message."""
        return (self.marks / f"{message_id}.{attempt}.start").exists()

    def done(self, message_id: str) -> bool:
        """Whether a handler finished the message."""
        return (self.marks / f"{message_id}.done").exists()

    def close(self) -> None:
        """Kill whatever still runs, and reap it."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def workers(tmp_path: Path, durable_url: str) -> Iterator[Workers]:
    """A test folder with a handler module, and the worker processes started."""
    w = Workers(tmp_path, durable_url)
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def durable_client(durable_url: str) -> Iterator[postroom.Client]:
    """A sync client on the same backend as the workers."""
    with postroom.connect(durable_url) as c:
        yield c
