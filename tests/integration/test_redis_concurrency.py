"""Redis: consumers in several processes race for the same messages."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import postroom
from tests.conftest import require_service

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
            log.append(["got", d.id, d.attempts, d.receipt,
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


@pytest.fixture
def url() -> Iterator[str]:
    require_service("redis", "127.0.0.1", 6379)
    prefix = "race" + uuid.uuid4().hex[:10]
    yield f"redis://127.0.0.1:6379/0?prefix={prefix}"
    import redis

    with redis.Redis(host="127.0.0.1", port=6379) as r:
        keys = list(r.scan_iter(match=f"{{{prefix}[:}}]*"))
        if keys:
            r.delete(*keys)


def test_redis_racing_consumers_get_each_message_once_and_lose_none(
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
    # A message is leased again only after the previous lease ran out: each lease
    # of a message ends at least one lease length after the one before.
    leases: dict[str, list[float]] = {}
    for e in sorted(events, key=lambda e: (e[1], e[2])):
        if e[0] == "got":
            leases.setdefault(e[1], []).append(e[4])
    for ends in leases.values():
        for earlier, later in itertools.pairwise(ends):
            assert later - earlier >= LEASE - 0.001
    with postroom.connect(url) as c:
        st = c.stats("race")
        assert (st.ready, st.delayed, st.in_flight, st.dead) == (0, 0, 0, 0)
