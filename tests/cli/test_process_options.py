"""Options of the long-running commands (``worker``, ``serve``): a bad value is one
line and exit 1 or 2, before any process starts; a signal while the worker
parent starts its children reaches every child started and stops the rest."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.cli.worker import _Supervisor

from .conftest import run_cli


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder holding ``app.py`` with one handler, as the working directory."""
    (tmp_path / "app.py").write_text(
        "import postroom\napp = postroom.App('memory://')\n"
        "@app.handler('jobs')\nasync def handle(body: bytes) -> None: ...\n"
    )
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    sys.modules.pop("app", None)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--grace", "inf", "--processes", "2"], "grace must be between 0 and 86400"),
        (["--concurrency", "100000", "--processes", "2"], "concurrency must be from 1"),
        (["--processes", "100000"], "processes must be from 1 to 256, got 100000"),
        (["--queues", ","], "--queues ',' names no queue"),
    ],
)
def test_worker_refuses_a_bad_option_once_before_starting_processes(
    app_dir: Path, args: list[str], expected: str
) -> None:
    result = run_cli(["worker", "app:app", *args])
    assert result.code == 1
    assert expected in result.err
    assert result.stderr.count("error:") == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["--port", "99999"], 2, "'--port'"),
        (["--port", "-1"], 2, "'--port'"),
        (["--max-body", "0"], 2, "'--max-body'"),
        (["--log-level", "bogus"], 1, "--log-level 'bogus' is not a log level"),
    ],
)
def test_serve_refuses_a_bad_option_in_one_line(
    args: list[str], code: int, expected: str
) -> None:
    result = run_cli(["serve", *args])
    assert result.code == code
    assert expected in result.err
    assert "Traceback" not in result.stderr


class _SignalledWhileStarting(_Supervisor):
    """Children that sleep; SIGTERM comes while the second one is started."""

    def _start(self) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        if len(self.procs) == 1:
            self._forward(signal.SIGTERM, None)
        return proc


def test_signal_while_the_parent_starts_children_reaches_every_child() -> None:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    supervisor = _SignalledWhileStarting([], 4)
    try:
        code = supervisor.run()
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert code == 0
    # the child being started got the signal too; no child was started after it
    assert [p.returncode for p in supervisor.procs] == [-signal.SIGTERM] * 2
