"""``/metrics``: the handler duration histogram counts the handlers of separate
``postroom worker`` processes together with the server's own HTTP consumers."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .conftest import Server

POSTROOM = str(Path(sys.executable).with_name("postroom"))

HANDLERS = """
import os
import time

import postroom

app = postroom.App()


@app.handler(os.environ["POSTROOM_TEST_QUEUE"])
def handle(body: int) -> None:
    time.sleep(0.02)
"""


def _histogram(text: str, queue: str) -> dict[str, float]:
    """The series of ``postroom_handler_duration_seconds`` for ``queue``."""
    out: dict[str, float] = {}
    pattern = re.compile(
        r"^postroom_handler_duration_seconds_(\w+)\{(?:le=\"([^\"]+)\",)?"
        rf"queue=\"{re.escape(queue)}\"\}} (\S+)$",
        re.MULTILINE,
    )
    for kind, le, value in pattern.findall(text):
        out[f"le={le}" if kind == "bucket" else kind] = float(value)
    return out


def _start_worker(folder: Path, url: str, queue: str) -> subprocess.Popen[bytes]:
    (folder / "timed.py").write_text(HANDLERS)
    env = {**os.environ, "POSTROOM_TEST_QUEUE": queue}
    env.pop("POSTROOM_URL", None)
    with (folder / "worker.log").open("wb") as out:
        return subprocess.Popen(
            [POSTROOM, "worker", "timed:app", "--url", url, "--log-level", "warning"],
            cwd=folder,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_for_count(http: httpx.Client, queue: str, count: float) -> dict[str, float]:
    deadline = time.monotonic() + 20
    while True:
        series = _histogram(http.get("/metrics").text, queue)
        if series.get("count") == count:
            return series
        if time.monotonic() > deadline:
            raise AssertionError(f"count never reached {count}: {series}")
        time.sleep(0.1)


def test_metrics_histogram_counts_worker_processes_and_http_consumers(
    server: Server, http: httpx.Client, queue: str, tmp_path: Path
) -> None:
    # One message held by an HTTP consumer, three for the worker process.
    http.post(f"/v1/queues/{queue}/messages", json={"body": 0}).raise_for_status()
    [held] = http.post(f"/v1/queues/{queue}/receive", json={}).json()["messages"]
    worker = _start_worker(tmp_path, server.url, queue)
    try:
        batch = {"messages": [{"body": n} for n in (1, 2, 3)]}
        http.post(f"/v1/queues/{queue}/messages:batch", json=batch).raise_for_status()
        from_worker = _wait_for_count(http, queue, 3.0)
        ack = http.post(f"/v1/queues/{queue}/ack", json={"receipt": held["receipt"]})
        assert ack.status_code == 200, ack.text
        both = _histogram(http.get("/metrics").text, queue)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0, (tmp_path / "worker.log").read_text()
    # Each worker handler slept 20 ms: none in the 5 ms bucket, all in +Inf.
    assert from_worker["le=0.005"] == 0.0
    assert from_worker["le=+Inf"] == 3.0
    assert from_worker["sum"] >= 0.06
    assert both["count"] == both["le=+Inf"] == 4.0
    assert both["sum"] >= from_worker["sum"]
