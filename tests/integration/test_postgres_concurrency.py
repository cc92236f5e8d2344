"""PostgreSQL: consumers in several processes race for the same messages, and a
consumer waiting in another process is woken by NOTIFY."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

import postroom
from tests.conftest import require_service

pytestmark = pytest.mark.slow

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
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

# Waits up to 30 s for one message on "wake" and prints when it got it.
WAITER = r"""
import sys, time
import postroom

with postroom.connect(sys.argv[1]) as c:
    got = c.receive("wake", wait=30.0)
    print(len(got), time.time(), flush=True)
"""


@pytest.fixture
def url() -> Iterator[str]:
    require_service("postgresql", "127.0.0.1", 5432)
    schema = "race" + uuid.uuid4().hex[:10]
    yield f"{ADMIN}?schema={schema}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_postgres_racing_consumers_get_each_message_once_and_lose_none(
    url: str, tmp_path: Path
) -> None:
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
    st, counters = anyio.run(_final_state, url)
    assert (st.ready, st.delayed, st.in_flight, st.dead) == (0, 0, 0, 0)
    assert counters["race"]["acked"] == MESSAGES


async def _final_state(url: str) -> tuple[postroom.QueueStats, dict[str, Any]]:
    async with postroom.connect_async(url) as c:
        return await c.stats("race"), await c.backend.counters(["race"])


def _listening(schema: str) -> bool:
    """Whether some session LISTENs on the schema's channel (the waiter)."""
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query = %s",
            (f'LISTEN "postroom_{schema}"',),
        ).fetchone()
    return row is not None and row[0] > 0


def test_postgres_send_wakes_a_consumer_waiting_in_another_process(url: str) -> None:
    with postroom.connect(url) as c:
        c.declare_queue("wake")
        waiter = subprocess.Popen(
            [sys.executable, "-c", WAITER, url], stdout=subprocess.PIPE, text=True
        )
        try:
            schema = url.rpartition("schema=")[2]
            deadline = time.monotonic() + 20
            while not _listening(schema):
                assert time.monotonic() < deadline, "the waiter never listened"
                assert waiter.poll() is None, "the waiter exited early"
                time.sleep(0.05)
            time.sleep(0.3)  # let it reach the wait itself, past its first claim
            sent_at = time.time()
            c.send("wake", {"hello": "there"})
            out, _ = waiter.communicate(timeout=40)
        finally:
            if waiter.poll() is None:
                waiter.kill()
                waiter.communicate()
    count, got_at = out.split()
    assert int(count) == 1
    # The queue was empty and nothing was due: only the notification can end
    # the 30 s wait this early.
    assert float(got_at) - sent_at < 10
