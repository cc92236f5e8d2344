"""SQLite: several processes share one database file."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import postroom

pytestmark = pytest.mark.slow

CONSUMERS = 4
MESSAGES = 600
LEASE = 0.5

# Each consumer leases small batches with a short lease, sometimes "crashes" (stops
# working on a batch without acking, so the lease expires), and logs every
# delivery it got and every ack that succeeded.
CONSUMER = r"""
import json, random, sys, time
import postroom

url, out = sys.argv[1], sys.argv[2]
rng = random.Random(int(sys.argv[3]))
log = []
with postroom.connect(url) as c:
    idle_since = time.monotonic()
    while time.monotonic() - idle_since < 2.0:
        got = c.receive("race", max_messages=rng.randint(1, 8), wait=0.2)
        if not got:
            continue
        idle_since = time.monotonic()
        for d in got:
            log.append(["got", d.id, d.attempts, d.receipt, time.time()])
        if rng.random() < 0.05:
            continue  # abandon the batch: its leases expire
        for d in got:
            try:
                c.ack(d)
                log.append(["acked", d.id, d.attempts, d.receipt, time.time()])
            except postroom.LeaseLost:
                log.append(["lost", d.id, d.attempts, d.receipt, time.time()])
with open(out, "w") as f:
    json.dump(log, f)
"""

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
    with postroom.connect(url) as c:
        c.declare_queue("race", visibility_timeout=LEASE, max_attempts=50)
        sent = set(c.send_many("race", [{"n": i} for i in range(MESSAGES)]))
    outs = [tmp_path / f"consumer{i}.json" for i in range(CONSUMERS)]
    procs = [
        subprocess.Popen([sys.executable, "-c", CONSUMER, url, str(out), str(i)])
        for i, out in enumerate(outs)
    ]
    for p in procs:
        assert p.wait(timeout=90) == 0
    events = [e for out in outs for e in json.loads(out.read_text())]

    acked = Counter(e[1] for e in events if e[0] == "acked")
    assert set(acked) == sent, "every message is acked, none is lost"
    assert max(acked.values()) == 1, "no message is acked twice"
    # One delivery per (message, attempt): a lease is never handed out twice.
    deliveries = Counter((e[1], e[2]) for e in events if e[0] == "got")
    assert max(deliveries.values()) == 1
    receipts = [e[3] for e in events if e[0] == "got"]
    assert len(receipts) == len(set(receipts))
    # A message is leased again only after the previous lease ran out.
    got: dict[str, list[float]] = {}
    for e in sorted(events, key=lambda e: e[4]):
        if e[0] == "got":
            got.setdefault(e[1], []).append(e[4])
    for times in got.values():
        for earlier, later in itertools.pairwise(times):
            assert later - earlier >= LEASE - 0.05
    with postroom.connect(url) as c:
        st = c.stats("race")
        assert (st.ready, st.delayed, st.in_flight, st.dead) == (0, 0, 0, 0)


def test_sqlite_processes_creating_a_fresh_database_at_once_all_succeed(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    procs = [
        subprocess.Popen([sys.executable, "-c", SENDER, url, "boot"]) for _ in range(6)
    ]
    for p in procs:
        assert p.wait(timeout=60) == 0
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
