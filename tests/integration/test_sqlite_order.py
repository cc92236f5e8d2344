"""SQLite specifics of message groups, priorities and rate limits: a file of an
older schema gains them on connect; the claim keeps using its indexes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import postroom
from postroom.backends.sqlite._conn import QUERIES

OLD_SCHEMA = """
DROP INDEX postroom_messages_group;
DROP INDEX postroom_messages_priority;
ALTER TABLE postroom_messages DROP COLUMN group_key;
ALTER TABLE postroom_messages DROP COLUMN priority;
ALTER TABLE postroom_dead DROP COLUMN group_key;
ALTER TABLE postroom_dead DROP COLUMN priority;
DROP TABLE postroom_buckets;
PRAGMA user_version = 4;
"""


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
    assert version == 5


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
    assert any("postroom_messages_group" in s for s in steps), steps
