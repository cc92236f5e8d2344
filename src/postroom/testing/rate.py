"""A queue's rate limit held by two worker processes (SPEC §9, "Time and order").

Two ``postroom worker`` processes (two in-process workers on a backend that is not
shared between processes, such as ``memory://``) consume one rate-limited queue
whose handler retries some messages once; every handler call, redeliveries
included, writes its time. Over 10 seconds of work the deliveries stay within
10 % of the limit. Marked ``slow`` (about 15 s).
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import postroom
from postroom import Client
from postroom.testing.workers import running

__all__ = ["test_rate_limit_is_held_by_two_worker_processes"]

RATE = 20.0  # deliveries per second (a burst of 2 permits)
SPAN = 10.0  # seconds of deliveries measured

HANDLER = """
import os
import time
from pathlib import Path

import postroom

app = postroom.App()
MARKS = Path(os.environ["POSTROOM_TEST_MARKS"])


@app.handler("paced", concurrency=4)
def handle(msg: postroom.Message) -> None:
    with (MARKS / f"{os.getpid()}.log").open("a") as out:
        out.write(f"{time.time()} {msg.attempts}\\n")
    if msg.json() % 5 == 0 and msg.attempts == 1:
        raise postroom.Retry(delay=0)  # its redelivery takes a permit too
"""


def deliveries(marks: Path) -> list[tuple[float, str, int]]:
    """Every handler call so far: (time, process, attempt), in time order."""
    out = []
    for log in marks.glob("*.log"):
        for line in log.read_text().splitlines():
            fields = line.split()
            if len(fields) == 2 and line.endswith(fields[1]):  # a whole line
                out.append((float(fields[0]), log.stem, int(fields[1])))
    return sorted(out)


@contextmanager
def two_workers(url: str, folder: Path, in_process: bool) -> Iterator[None]:
    """Two worker processes (or in-process workers) running :data:`HANDLER`."""
    module = f"paced_{uuid.uuid4().hex[:8]}"
    (folder / f"{module}.py").write_text(HANDLER)
    env = {**os.environ, "POSTROOM_TEST_MARKS": str(folder / "marks")}
    env.pop("POSTROOM_URL", None)
    if in_process:
        os.environ["POSTROOM_TEST_MARKS"] = env["POSTROOM_TEST_MARKS"]
        sys.path.insert(0, str(folder))
        app = importlib.import_module(module).app
        with running(app, url), running(app, url):
            yield
        return
    cmd = [sys.executable, "-m", "postroom", "worker", f"{module}:app"]
    cmd += ["--url", url, "--processes", "1"]
    procs = [
        subprocess.Popen(cmd, cwd=folder, env=env, stderr=subprocess.DEVNULL)
        for _ in range(2)
    ]
    try:
        yield
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)


@pytest.mark.slow
def test_rate_limit_is_held_by_two_worker_processes(
    client: Client, url: str, tmp_path: Path
) -> None:
    caps = client.aclient.capabilities
    if not caps.rate_limits:
        with pytest.raises(postroom.NotSupported, match="rate_limit"):
            client.declare_queue("paced", rate_limit=RATE)
        return
    client.declare_queue("paced", rate_limit=RATE)
    # 1.5 times the limit comes due each second: a backlog builds up, and a retry
    # (due at once) sorts into it rather than after all of it.
    for k in range(int(SPAN * 2)):
        batch = range(int(k * RATE * 0.75), int((k + 1) * RATE * 0.75))
        client.send_many("paced", list(batch), delay=k / 2)
    marks = tmp_path / "marks"
    marks.mkdir()
    in_process = not caps.cross_process
    with two_workers(url, tmp_path, in_process):
        deadline = time.monotonic() + 6 * SPAN  # bounded even on a slow machine
        while time.monotonic() < deadline:
            seen = deliveries(marks)
            if seen and seen[-1][0] - seen[0][0] >= SPAN + 0.5:
                break
            time.sleep(0.2)
    seen = deliveries(marks)
    start = seen[0][0]
    window = [d for d in seen if d[0] < start + SPAN]
    assert seen[-1][0] - start >= SPAN, "the workers did not run for 10 s"
    assert len(window) <= RATE * SPAN * 1.1, len(window)  # the limit, held
    per_second = [sum(1 for d in window if int(d[0] - start) == s) for s in range(10)]
    assert max(per_second) <= RATE * 1.5, per_second  # no burst beyond 1/10 s
    if not in_process:
        assert len({d[1] for d in window}) == 2  # both processes shared the limit
    assert any(d[2] > 1 for d in window)  # redeliveries were paced too
