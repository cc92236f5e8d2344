"""PostgreSQL: consumers in several processes race for the same messages, and a
consumer waiting in another process is woken by NOTIFY."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest

import postroom
from tests.conftest import require_service
from tests.integration._racing import (
    LEASE,
    MESSAGES,
    check_each_message_once,
    race,
)

pytestmark = pytest.mark.slow

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"
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
