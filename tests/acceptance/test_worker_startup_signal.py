"""SIGTERM while ``postroom worker`` starts (importing the app, connecting) is
logged and stops it cleanly with exit code 0, before any message is taken."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import anyio

import postroom
from postroom.runtime.signals import StartupSignals

from .conftest import POSTROOM, wait_until

SLOW_APP = """
import os
import time
from pathlib import Path

import postroom

Path(os.environ["POSTROOM_TEST_MARKS"], "importing").write_text("")
time.sleep(2.0)  # a slow import: the signal arrives in the middle of it

app = postroom.App()


@app.handler("jobs")
def handle(body: dict) -> None:
    Path(os.environ["POSTROOM_TEST_MARKS"], "handled").write_text("")
"""


def test_sigterm_during_startup_logs_and_exits_0(tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW_APP)
    url = f"sqlite:///{tmp_path}/x.db"
    with postroom.connect(url) as client:
        client.send("jobs", {"n": 1})
    env = {**os.environ, "POSTROOM_TEST_MARKS": str(tmp_path)}
    proc = subprocess.Popen(
        [POSTROOM, "worker", "slow:app", "--url", url],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: (tmp_path / "importing").exists())
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = out.decode()
    assert proc.returncode == 0, log
    assert "SIGTERM: shutting down" in log
    assert "worker stopped before it started" in log
    assert not (tmp_path / "handled").exists()
    with postroom.connect(url) as client:
        st = client.stats("jobs")
        assert (st.ready, st.in_flight) == (1, 0)


def test_serve_after_a_startup_signal_stops_before_running() -> None:
    app = postroom.App("memory://startup-signal")

    @app.handler("jobs")
    def handle(body: dict) -> None:
        raise AssertionError("no message may be taken")

    startup = StartupSignals()
    startup.received.append(signal.SIGTERM)
    worker = postroom.Worker(app)
    anyio.run(lambda: worker.serve(startup=startup))
    assert worker.stopping
    assert worker.runners == []  # it never prepared a queue
