"""SQLite specifics of message groups, priorities and rate limits: a file of an
older schema gains them on connect; the claim keeps using its indexes."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import postroom
from postroom.backends.sqlite._conn import QUERIES, SCHEMA_VERSION

# Schema 5 from schema 6: no blocked column, no trigger, the older indexes.
SCHEMA_5 = """
DROP TRIGGER postroom_messages_unblock;
DROP INDEX postroom_messages_visible;
DROP INDEX postroom_messages_priority;
ALTER TABLE postroom_messages DROP COLUMN blocked;
CREATE INDEX postroom_messages_visible
    ON postroom_messages (queue, due, seq) WHERE token IS NULL;
CREATE INDEX postroom_messages_priority
    ON postroom_messages (queue, priority DESC, due, seq)
    WHERE token IS NULL AND priority > 0;
PRAGMA user_version = 5;
"""

OLD_SCHEMA = (
    SCHEMA_5
    + """
DROP INDEX postroom_messages_group;
DROP INDEX postroom_messages_priority;
ALTER TABLE postroom_messages DROP COLUMN group_key;
ALTER TABLE postroom_messages DROP COLUMN priority;
ALTER TABLE postroom_dead DROP COLUMN group_key;
ALTER TABLE postroom_dead DROP COLUMN priority;
DROP TABLE postroom_buckets;
PRAGMA user_version = 4;
"""
)


def test_a_schema_4_file_gains_groups_priorities_and_rate_limits(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    with postroom.connect(url) as c:
        old = c.send("q", "from before")
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.executescript(OLD_SCHEMA)
    conn.close()
    with postroom.connect(url) as c:
        c.declare_queue("q", rate_limit=100)
        late = c.send("q", "urgent", priority=9)
        c.send_many("q", ["g1", "g2"], group="g")
        got = c.receive("q", max_messages=10)
        assert [d.id for d in got][:2] == [late, old]
        assert [d.message.json() for d in got[2:]] == ["g1"]
    with sqlite3.connect(tmp_path / "old.db") as conn:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    conn.close()
    assert version == SCHEMA_VERSION


def test_a_schema_5_file_keeps_its_groups_waiting_behind_their_heads(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/five.db"
    with postroom.connect(url) as c:
        c.declare_queue("q", max_attempts=3)
        a = c.send_many("q", ["a1", "a2", "a3"], group="a")
        b = c.send_many("q", ["b1", "b2"], group="b")
        plain = c.send("q", "plain")
    with sqlite3.connect(tmp_path / "five.db") as conn:
        conn.executescript(SCHEMA_5)
    conn.close()
    with postroom.connect(url) as c:
        got = c.receive("q", max_messages=10)
        assert sorted(d.id for d in got) == sorted([a[0], b[0], plain])
        for d in got:
            c.ack(d)
        assert sorted(d.id for d in c.receive("q", max_messages=10)) == sorted(
            [a[1], b[1]]
        )
        stats = c.stats("q")
        assert (stats.ready, stats.in_flight) == (1, 2)
    with sqlite3.connect(tmp_path / "five.db") as conn:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    conn.close()
    assert version == SCHEMA_VERSION


def test_the_claim_walks_indexes_not_the_table(tmp_path: Path) -> None:
    with postroom.connect(f"sqlite:///{tmp_path}/plan.db") as c:
        c.send("q", 1)
    with sqlite3.connect(tmp_path / "plan.db") as conn:
        args = {"queue": "q", "now": 0, "token": "t", "until": 1, "consumer": "c"}
        plan = conn.execute(
            "EXPLAIN QUERY PLAN " + QUERIES["claim"], {**args, "limit": 5}
        ).fetchall()
    conn.close()
    steps = [row[3] for row in plan]
    assert not [s for s in steps if s.startswith("SCAN m")], steps
    assert any("postroom_messages_priority" in s for s in steps), steps
    assert any("postroom_messages_visible" in s for s in steps), steps
    # Waiting members of groups are outside the claim's index range: no lookup
    # of earlier messages per candidate.
    assert not any("postroom_messages_group" in s for s in steps), steps


def test_a_group_moves_on_when_its_head_goes_by_any_way(tmp_path: Path) -> None:
    # Each way a head leaves unblocks the next message of its group (a trigger):
    # lease expiry into the dead letters, a redrive that replaces it, a purge.
    url = f"sqlite:///{tmp_path}/heads.db"
    with postroom.connect(url) as c:
        c.declare_queue("q", max_attempts=1)
        c.declare_queue("src", max_attempts=1)
        x, y = c.send_many("q", ["x", "y"], group="g")
        [head] = c.receive("q", visibility_timeout=0.05)
        assert head.id == x and not c.receive("q", max_messages=10)
        time.sleep(0.1)  # the lease runs out with no attempt left: x is dead
        [nxt] = c.receive("q", max_messages=10)
        assert nxt.id == y
        c.redrive("q")  # x comes back behind y, blocked
        assert not c.receive("q", max_messages=10)
        c.ack(nxt)
        [back] = c.receive("q", max_messages=10)
        assert back.id == x
        z = c.send("q", "z", group="g")
        # A dead letter of another queue with x's id, redriven onto q, replaces x
        # (the head, leased): z moves up and the new x waits behind it.
        c.send("src", "other", group="g")
        [other] = c.receive("src")
        c.retry(other, delay=0)
        with sqlite3.connect(tmp_path / "heads.db") as conn:
            conn.execute("UPDATE postroom_dead SET id = ? WHERE queue = 'src'", (x,))
        conn.close()
        assert c.redrive("src", to="q") == [x]
        [first] = c.receive("q", max_messages=10)
        assert first.id == z
        c.ack(first)
        [last] = c.receive("q", max_messages=10)
        assert (last.id, last.message.json()) == (x, "other")
        c.send_many("q", ["p1", "p2"], group="p")
        assert c.purge("q") == 3
        p3 = c.send("q", "p3", group="p")
        assert [d.id for d in c.receive("q", max_messages=10)] == [p3]
