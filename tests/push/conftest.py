"""A real HTTP receiver on 127.0.0.1 for push tests (``http.server`` in a thread)."""

from __future__ import annotations

import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import pytest

from postroom.runtime.egress import ALLOW_ENV


@dataclass
class Request:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """What the receiver answers (changeable during a test) and what it got."""

    url: str = ""
    status: int = 200
    answer: bytes = b"ok"
    answer_headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    gate: threading.Event | None = None
    requests: list[Request] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    closing: threading.Event = field(default_factory=threading.Event)

    def endpoint(self, path: str = "/hook") -> str:
        """The URL of ``path`` on this receiver."""
        return self.url + path

    def count(self, path: str | None = None) -> int:
        """How many requests arrived (on ``path``, or on any path)."""
        with self.lock:
            return sum(1 for r in self.requests if path is None or r.path == path)

    def got(self, path: str | None = None) -> list[Request]:
        """A copy of the requests that arrived (on ``path``)."""
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]


def _handler(rx: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            with rx.lock:
                headers = {k.lower(): v for k, v in self.headers.items()}
                rx.requests.append(Request(self.path, headers, body))
                rx.in_flight += 1
                rx.max_in_flight = max(rx.max_in_flight, rx.in_flight)
                status, answer, delay, gate = rx.status, rx.answer, rx.delay, rx.gate
                extra = dict(rx.answer_headers)
            try:
                if gate is not None and self.path.startswith("/slow"):
                    while not gate.wait(0.05) and not rx.closing.is_set():
                        pass
                if delay:
                    rx.closing.wait(delay)
                self.send_response(status)
                self.send_header("content-length", str(len(answer)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer)
            except OSError:
                pass  # the pusher gave up (timeout) and closed the connection
            finally:
                with rx.lock:
                    rx.in_flight -= 1

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def allow_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """Allow pushes to 127.0.0.1, which the egress policy refuses by default."""
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """An HTTP server on a free port of 127.0.0.1 that records every POST.

    Pushes may reach it because this fixture allow-lists 127.0.0.1 (the egress
    policy refuses loopback targets by default): use :func:`serve_receiver` for
    one that is not allowed.
    """
    monkeypatch.setenv(ALLOW_ENV, "127.0.0.1")
    with serve_receiver() as rx:
        yield rx


@contextmanager
def serve_receiver() -> Iterator[Receiver]:
    """Run a recording receiver on 127.0.0.1 for the duration of the block."""
    rx = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rx))
    server.daemon_threads = True
    rx.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}
    )
    thread.start()
    try:
        yield rx
    finally:
        rx.closing.set()
        server.shutdown()
        server.server_close()
        thread.join()


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    timeout: float = 10.0,
    what: str = "condition",
) -> None:
    """Wait until ``condition()`` holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await anyio.sleep(0.02)


@pytest.fixture
def anyio_backend() -> str:
    """Run the async tests on asyncio."""
    return "asyncio"
