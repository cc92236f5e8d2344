"""The push example (examples/push): one service publishes, three subscribers
react; the same code on SQLite (the default) and on NATS JetStream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import postroom
from tests.contract.conftest import (
    BACKENDS,
    _redis_cleanup,  # noqa: F401 - autouse: drop the test's streams
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "push"
POSTROOM = str(Path(sys.executable).with_name("postroom"))

pytestmark = pytest.mark.slow


def _wait_until(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.05)


def _lines(out: Path, reaction: str) -> list[str]:
    log = out / f"{reaction}.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.parametrize("backend", ["sqlite", "nats"])
def test_push_example_every_subscriber_reacts(backend: str, tmp_path: Path) -> None:
    url = BACKENDS[backend](tmp_path, "push" + uuid.uuid4().hex[:8])
    out = tmp_path / "out"
    env = {**os.environ, "POSTROOM_URL": url, "PUSH_EXAMPLE_OUT": str(out)}
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        worker = subprocess.Popen(
            [POSTROOM, "worker", "reactions:app"],
            cwd=EXAMPLE,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        with postroom.connect(url) as client:
            _wait_until(lambda: len(client.subscriptions("order.placed")) == 3)
            shop = subprocess.run(
                [sys.executable, str(EXAMPLE / "shop.py"), "--orders", "6"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            ids = shop.stdout.split()
            assert len(ids) == 6

            def done() -> bool:
                counts = [len(_lines(out, r)) for r in ("email", "stock", "loyalty")]
                return counts == [6, 6, 2]

            _wait_until(done)
            assert sorted(_lines(out, "loyalty")) == [
                "order 3: 37 points",
                "order 6: 75 points",
            ]
            assert "order 1: confirmation to c1" in _lines(out, "email")
            for sub in client.subscriptions("order.placed"):
                _wait_until(lambda q=sub.queue: client.stats(q).in_flight == 0)
                st = client.stats(sub.queue)
                assert (st.ready, st.dead) == (0, 0)
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
    assert code == 0, log.read_text()
