"""A real ``postroom serve`` process on a free loopback port, driven with httpx."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ADMIN = "admin-token-0123456789abcdef"
SENDER = "send-token-0123456789abcdef"
RECEIVER = "recv-token-0123456789abcdef"
OPS = "ops-admin-token-0123456789ab"
TOKENS_ENV = (
    f"{ADMIN}:admin;{SENDER}:send:orders.*;{RECEIVER}:receive:orders.*|emails;"
    f"{OPS}:admin:orders.*"
)


# The ``postroom`` command, run by the interpreter of this test session.
CLI = [sys.executable, "-c", "from postroom.cli import main; main()"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running server: its base URL, backend URL and process."""

    base: str
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def client(self, token: str | None = None) -> httpx.Client:
        """An httpx client for this server, with a bearer token when given."""
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=30.0)


def start_server(
    folder: Path,
    *,
    tokens: str | None = None,
    push: bool = False,
    extra: tuple[str, ...] = (),
    url: str | None = None,
) -> Server:
    """Start ``postroom serve`` on ``url`` (default: SQLite in ``folder``); wait
    until it answers."""
    port = free_port()
    url = url or f"sqlite:///{folder}/http.db"
    env = {k: v for k, v in os.environ.items() if k != "POSTROOM_TOKENS"}
    if tokens:
        env["POSTROOM_TOKENS"] = tokens
    log = folder / "server.log"
    cmd = [*CLI, "serve", "--url", url, "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, *([] if push else ["--no-push"]), "--log-level", "warning", *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    server = Server(f"http://127.0.0.1:{port}", url, proc, log)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            if httpx.get(server.base + "/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"server did not answer: {log.read_text()}")


def stop_server(server: Server) -> None:
    """Stop the process (SIGTERM, then SIGKILL) and reap it."""
    server.proc.terminate()
    try:
        server.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An open server (no tokens, loopback only)."""
    srv = start_server(tmp_path_factory.mktemp("open"))
    yield srv
    stop_server(srv)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with admin, sender and receiver tokens."""
    srv = start_server(tmp_path_factory.mktemp("secured"), tokens=TOKENS_ENV)
    yield srv
    stop_server(srv)


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    """An httpx client of the open server."""
    with server.client() as c:
        yield c


@pytest.fixture
def queue() -> str:
    """A queue name of this test alone."""
    return f"t{uuid.uuid4().hex[:10]}"


CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# POSTROOM_SCREENSHOTS=1 refreshes the screenshots of docs/http.md (the dashboard
# tests, in Debian's chromium driven by Playwright).
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless."""
    if not os.path.exists(CHROMIUM):
        reason = (
            f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh "
            "does it when run as root)"
        )
        if os.environ.get("POSTROOM_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/img when refreshing them, else a temp folder."""
    if os.environ.get("POSTROOM_SCREENSHOTS") == "1":
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        return DOCS_IMG
    return tmp_path


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page that accepts every confirmation dialog."""
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    p = context.new_page()
    p.on("dialog", lambda dialog: dialog.accept())
    yield p
    context.close()
