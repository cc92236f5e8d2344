"""Periodic jobs in real ``postroom worker`` processes: one run per tick across two
processes, and at most one missed tick caught up after a restart (docs/scheduling.md).
"""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

import postroom
from tests.acceptance.conftest import Workers, wait_until

pytestmark = pytest.mark.slow

TICKS = """
import os
import uuid
from datetime import datetime
from pathlib import Path

import postroom

app = postroom.App()
MARKS = Path(os.environ["POSTROOM_TEST_MARKS"])


@app.periodic("beat", every=1)
def beat(tick: datetime) -> None:
    (MARKS / f"{tick.timestamp():.0f}.{uuid.uuid4().hex}").write_text(str(os.getpid()))
"""


def runs(marks: Path) -> list[int]:
    """The tick of every run so far (epoch seconds), one entry per run."""
    return sorted(int(p.name.split(".")[0]) for p in marks.iterdir())


def stop(workers: Workers, proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM a worker command and check it stopped cleanly."""
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0, workers.log(proc)


def test_ticks_run_once_across_processes_and_one_is_caught_up_after_downtime(
    workers: Workers, durable_client: postroom.Client
) -> None:
    (workers.folder / "ticks.py").write_text(TICKS)
    parent = workers.start("--processes", "2", target="ticks:app")
    wait_until(lambda: workers.log(parent).count("started on") == 2)
    wait_until(lambda: len(runs(workers.marks)) >= 3, timeout=30)
    stop(workers, parent)
    before = runs(workers.marks)
    assert len(before) == len(set(before)), before  # no tick ran twice
    pending = [
        int(datetime.fromisoformat(m.json()).timestamp())
        for m in durable_client.peek("postroom.periodic.beat")
    ]
    assert len(pending) <= 1 and all(t > before[-1] for t in pending), pending
    time.sleep(3)  # downtime: the pending tick and the ones after it come due
    restarted = datetime.now(UTC).timestamp()
    again = workers.start(target="ticks:app")
    wait_until(lambda: len(runs(workers.marks)) >= len(before) + len(pending) + 2)
    stop(workers, again)
    after = runs(workers.marks)[len(before) :]
    assert len(after) == len(set(after)), after
    late = [t for t in after if t < restarted]
    assert late == pending  # the one enqueued tick ran late; the missed ones did not
    assert all(t > restarted for t in after if t not in pending)
