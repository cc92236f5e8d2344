"""SQLite: several processes share one database file."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

import postroom
from tests.integration._racing import (
    LEASE,
    check_each_message_once,
    check_queue_empty,
    race,
)

pytestmark = pytest.mark.slow

SENDER = r"""
import sys
import postroom

with postroom.connect(sys.argv[1]) as c:
    c.send(sys.argv[2], {"from": "another process"})
"""


def test_sqlite_racing_consumers_get_each_message_once_and_lose_none(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/race.db"
    sent, events = race(url, tmp_path)
    check_each_message_once(sent, events)
    # A message is leased again only after the previous lease ran out.
    got: dict[str, list[float]] = {}
    for e in sorted(events, key=lambda e: e[4]):
        if e[0] == "got":
            got.setdefault(e[1], []).append(e[4])
    for times in got.values():
        for earlier, later in itertools.pairwise(times):
            assert later - earlier >= LEASE - 0.05
    check_queue_empty(url)


def test_sqlite_processes_creating_a_fresh_database_at_once_all_succeed(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    procs = [
        subprocess.Popen([sys.executable, "-c", SENDER, url, "boot"]) for _ in range(6)
    ]
    # Every process is waited for before asserting, so a failure leaves none running.
    codes = [p.wait(timeout=60) for p in procs]
    assert codes == [0] * 6
    with postroom.connect(url) as c:
        assert c.stats("boot").ready == 6


def test_sqlite_long_poll_wakes_on_a_send_from_another_process(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/wake.db"
    with postroom.connect(url) as c:
        c.declare_queue("wake")
        proc = subprocess.Popen([sys.executable, "-c", SENDER, url, "wake"])
        try:
            got = c.receive("wake", wait=30.0)
        finally:
            assert proc.wait(timeout=60) == 0
        assert [d.message.json() for d in got] == [{"from": "another process"}]


def test_sqlite_long_poll_wakes_without_inotify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where inotify is missing (macOS, Windows) data_version is polled instead.
    from postroom.backends.sqlite import _watch

    monkeypatch.setattr(_watch, "watch_file", lambda path: None)
    test_sqlite_long_poll_wakes_on_a_send_from_another_process(tmp_path)
