"""The installed ``postroom`` command and ``python -m postroom``, as real processes."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
import sys
import time
from pathlib import Path

import postroom
from tests.cli.test_queue_commands import ULID, make_dead_letters

POSTROOM = Path(sys.executable).with_name("postroom")


def postroom_cmd(
    *args: str, input: str | None = None, module: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the ``postroom`` script (or ``python -m postroom``) to completion."""
    cmd = [sys.executable, "-m", "postroom"] if module else [str(POSTROOM)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    return subprocess.run(
        [*cmd, *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_send_peek_and_redrive_across_processes(sqlite_url: str) -> None:
    sent = postroom_cmd("send", "--url", sqlite_url, "jobs", '{"n": 1}', "-H", "a=b")
    assert sent.returncode == 0, sent.stderr
    mid = sent.stdout.strip()
    assert ULID.match(mid)
    piped = postroom_cmd("send", "--url", sqlite_url, "jobs", "-", input="from stdin")
    assert piped.returncode == 0, piped.stderr
    peeked = postroom_cmd("peek", "--url", sqlite_url, "jobs", "--json", module=True)
    rows = json.loads(peeked.stdout)
    assert [(r["id"], r["body"]) for r in rows] == [
        (mid, {"n": 1}),
        (piped.stdout.strip(), "from stdin"),
    ]
    assert rows[0]["headers"]["a"] == "b"
    with postroom.connect(sqlite_url) as client:
        client.purge("jobs")
        ids = make_dead_letters(client)
        redriven = postroom_cmd("dlq", "redrive", "--url", sqlite_url, "jobs", "--yes")
        assert redriven.returncode == 0, redriven.stderr
        assert client.stats("jobs").dead == 0
        assert {m.id for m in client.peek("jobs")} == set(ids.values())


def test_errors_are_one_clear_line_without_traceback(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    cases = [
        (("peek", "--url", url, "missing.queue"), 1, "'missing.queue' does not exist"),
        (("queues", "--url", "kafka://broker"), 1, "unknown URL scheme 'kafka'"),
        (("send", "--url", url, "q", "{}", "-H", "oops"), 2, "expected KEY=VALUE"),
    ]
    for args, code, message in cases:
        done = postroom_cmd(*args)
        assert done.returncode == code, (args, done.stderr)
        assert message in " ".join(done.stderr.split()), done.stderr
        assert "Traceback" not in done.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    done = postroom_cmd("--debug", "queues", "--url", "kafka://broker", module=True)
    assert done.returncode == 1
    assert "Traceback" in done.stderr
    assert "ConfigurationError" in done.stderr


def test_interrupted_redrive_loses_nothing(sqlite_url: str) -> None:
    with postroom.connect(sqlite_url) as client:
        client.declare_queue("jobs", max_attempts=1)
        # 100 at 4/s: the redrive runs for 25 s, far longer than a loaded
        # machine takes to see the first batch and interrupt it.
        client.send_many("jobs", list(range(100)))
        for d in client.receive("jobs", max_messages=100):
            client.reject(d)
        cmd = [str(POSTROOM), "dlq", "redrive", "--url", sqlite_url, "jobs"]
        proc = subprocess.Popen(
            [*cmd, "--rate", "4", "--yes"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while client.stats("jobs").ready < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130
        assert "interrupted" in err and "Traceback" not in err
        stats = client.stats("jobs")
        assert stats.ready >= 2 and stats.dead >= 1
        assert stats.ready + stats.dead == 100


def answer_on_a_terminal(args: list[str], answer: str) -> tuple[int, str]:
    """Run ``postroom ARGS`` with a terminal as stdin and type ``answer``."""
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.Popen(
            [str(POSTROOM), *args],
            stdin=secondary,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        os.write(primary, answer.encode() + b"\n")
        out, _ = proc.communicate(timeout=60)
    finally:
        os.close(primary)
        os.close(secondary)
    return proc.returncode, out


def test_confirmation_on_a_terminal(sqlite_url: str) -> None:
    with postroom.connect(sqlite_url) as client:
        make_dead_letters(client)
        args = ["dlq", "purge", "--url", sqlite_url, "jobs"]
        code, out = answer_on_a_terminal(args, "n")
        assert code == 1, out
        assert "Delete every dead letter of queue 'jobs'?" in out
        assert "nothing done" in out
        assert client.stats("jobs").dead == 2
        code, out = answer_on_a_terminal(args, "y")
        assert code == 0, out
        assert "purged 2 dead letters" in out
        assert client.stats("jobs").dead == 0
