"""Consumers in several processes racing for one queue's messages.

Shared by the per-backend integration tests: :func:`race` fills a queue, runs the
consumers, and returns what was sent and every event they logged;
:func:`check_each_message_once` asserts what every backend must hold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import postroom

CONSUMERS = 4
MESSAGES = 600
LEASE = 0.5

# Each consumer leases small batches with a short lease, sometimes "crashes" (stops
# working on a batch without acking, so the lease expires), and logs every
# delivery it got and every ack that succeeded. A "got" event is
# [kind, id, attempts, receipt, time got, lease end].
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
            log.append(["got", d.id, d.attempts, d.receipt, time.time(),
                        d.lease_expires_at.timestamp()])
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


def race(url: str, tmp_path: Path) -> tuple[set[str], list[list[Any]]]:
    """Send MESSAGES to "race", run CONSUMERS processes; (sent ids, events)."""
    with postroom.connect(url) as c:
        c.declare_queue("race", visibility_timeout=LEASE, max_attempts=50)
        sent = set(c.send_many("race", [{"n": i} for i in range(MESSAGES)]))
    outs = [tmp_path / f"consumer{i}.json" for i in range(CONSUMERS)]
    procs = [
        subprocess.Popen([sys.executable, "-c", CONSUMER, url, str(out), str(i)])
        for i, out in enumerate(outs)
    ]
    try:
        for i, p in enumerate(procs):
            assert p.wait(timeout=90) == 0, f"consumer {i} failed (its stderr above)"
    finally:
        for p in procs:  # a failed wait leaves none running into the next test
            if p.poll() is None:
                p.kill()
                p.wait()
    return sent, [e for out in outs for e in json.loads(out.read_text())]


def check_each_message_once(sent: set[str], events: list[list[Any]]) -> None:
    """Every message acked exactly once; no lease handed out twice."""
    acked = Counter(e[1] for e in events if e[0] == "acked")
    assert set(acked) == sent, "every message is acked, none is lost"
    assert max(acked.values()) == 1, "no message is acked twice"
    # One delivery per (message, attempt): a lease is never handed out twice.
    deliveries = Counter((e[1], e[2]) for e in events if e[0] == "got")
    assert max(deliveries.values()) == 1
    receipts = [e[3] for e in events if e[0] == "got"]
    assert len(receipts) == len(set(receipts))


def check_queue_empty(url: str) -> None:
    """Nothing is left ready, delayed, in flight or dead."""
    with postroom.connect(url) as c:
        st = c.stats("race")
        assert (st.ready, st.delayed, st.in_flight, st.dead) == (0, 0, 0, 0)
