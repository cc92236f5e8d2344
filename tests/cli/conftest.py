"""Fixtures for the CLI tests: isolated backend URLs and an in-process runner."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

import postroom
from postroom.cli import main
from postroom.cli._common import state

# Backends the CLI tests run on: one process's memory, and a SQLite file that several
# processes share (the subprocess tests use it).
CLI_BACKENDS = ("memory", "sqlite")


@dataclass(frozen=True)
class Result:
    """What one run of the ``postroom`` command printed and returned."""

    code: int
    stdout: str
    stderr: str

    @property
    def err(self) -> str:
        """stderr with rich's line wrapping undone, for matching messages."""
        return " ".join(self.stderr.split())


def run_cli(args: list[str], input: str | bytes | None = None) -> Result:
    """Run ``postroom ARGS`` in this process, through its real entry point."""
    with CliRunner().isolation(input=input) as (out, err, _):
        try:
            main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        sys.stdout.flush()
        sys.stderr.flush()
        stdout = out.getvalue().decode()
        stderr = err.getvalue().decode()
    return Result(code, stdout, stderr)


@pytest.fixture(autouse=True)
def _no_debug() -> Iterator[None]:
    """``--debug`` sets process-wide state: put it back after each test."""
    saved = state.debug
    state.debug = False
    yield
    state.debug = saved


@pytest.fixture(params=CLI_BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh backend URL per test and backend."""
    if request.param == "memory":
        return f"memory://cli-{uuid.uuid4().hex[:12]}"
    return f"sqlite:///{tmp_path}/x.db"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite URL, shared by every process of one test."""
    return f"sqlite:///{tmp_path}/x.db"


@pytest.fixture
def client(url: str) -> Iterator[postroom.Client]:
    """A client on the same backend as the commands under test."""
    with postroom.connect(url) as c:
        yield c
