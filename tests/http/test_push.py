"""``postroom serve`` delivers push subscriptions by default."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from postroom import verify_signature

from .conftest import start_server, stop_server


class _Recorder(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A local webhook receiver answering 204; its URL and what it received."""
    received: list[tuple[dict[str, str], bytes]] = []
    handler = type("Recorder", (_Recorder,), {"received": received})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", received
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.mark.slow
def test_serve_pushes_to_webhook_subscriptions(
    tmp_path: Path, endpoint: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = endpoint
    server = start_server(tmp_path, push=True, extra=("--push-allow", "127.0.0.1"))
    try:
        with server.client() as http:
            sub = http.post(
                "/v1/topics/orders.created/subscriptions",
                json={"name": "hook", "push_endpoint": url},
            ).json()
            event = http.post(
                "/v1/topics/orders.created/publish", json={"body": {"order": 7}}
            ).json()
            deadline = time.monotonic() + 20
            while not received and time.monotonic() < deadline:
                time.sleep(0.1)
            assert received, "the server did not push the event"
            headers, body = received[0]
            lowered = {k.lower(): v for k, v in headers.items()}
            assert lowered["ce-id"] == event["id"]
            assert body == b'{"order":7}'
            assert verify_signature(sub["secret"], headers, body)
            while time.monotonic() < deadline:
                stats = http.get(f"/v1/queues/{sub['queue']}").json()
                if stats["counters"]["acked"] == 1:
                    break
                time.sleep(0.1)
            assert (stats["ready"], stats["in_flight"]) == (0, 0), stats
            assert stats["counters"]["acked"] == 1
    finally:
        stop_server(server)
