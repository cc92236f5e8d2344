"""SQLite's stored ``blocked`` flag under generated programs of sends, claims,
acks, retries, releases, dead letters, redrives and purges: after every step a
message is blocked exactly when an earlier message of its queue and group is
stored, and every grouped delivery is its group's oldest stored message."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import postroom

GROUPS = st.sampled_from(["a", "b", None])
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("send"), GROUPS, st.integers(1, 3)),
        st.tuples(st.just("receive"), st.integers(1, 4)),
        st.tuples(
            st.sampled_from(["ack", "retry", "reject", "release"]), st.integers(0, 3)
        ),
        st.tuples(st.sampled_from(["redrive", "purge"])),
    ),
    min_size=4,
    max_size=25,
)


def _check_blocked(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        wrong = conn.execute(
            """SELECT id FROM postroom_messages AS m
            WHERE blocked != (group_key IS NOT NULL AND EXISTS (
                SELECT 1 FROM postroom_messages AS e
                WHERE e.queue = m.queue AND e.group_key = m.group_key
                    AND e.seq < m.seq))"""
        ).fetchall()
    conn.close()
    assert not wrong


class _Model:
    """The grouped messages stored, in send order per group, and the leases held."""

    def __init__(self, c: postroom.Client) -> None:
        self.c = c
        self.stored: dict[str, list[str]] = {"a": [], "b": []}
        self.group_of: dict[str, str] = {}
        self.held: list[postroom.Delivery] = []
        self.dead: list[str] = []  # grouped dead letters in order of death

    def send(self, group: str | None, n: int) -> None:
        ids = self.c.send_many("q", ["m"] * n, group=group)
        if group is not None:
            self.stored[group] += ids
            self.group_of.update(dict.fromkeys(ids, group))

    def receive(self, n: int) -> None:
        got = self.c.receive("q", max_messages=n)
        for d in got:
            if d.message.group is not None:
                assert self.stored[d.message.group][0] == d.id
        self.held += got

    def settle(self, op: str, i: int) -> None:
        if not self.held:
            return
        d = self.held.pop(i % len(self.held))
        if op == "ack":
            self.c.ack(d)
        elif op == "retry":
            self.c.retry(d, delay=0)
        elif op == "release":
            self.c.release([d])
        else:
            self.c.reject(d)
        if op in ("ack", "reject") and d.id in self.group_of:
            self.stored[self.group_of[d.id]].remove(d.id)
            if op == "reject":
                self.dead.append(d.id)

    def redrive(self) -> None:
        self.c.redrive("q")
        for mid in self.dead:
            self.stored[self.group_of[mid]].append(mid)
        self.dead.clear()

    def purge(self) -> None:
        self.c.purge("q")
        self.stored = {g: [] for g in self.stored}
        self.held.clear()


@settings(max_examples=150, deadline=None, derandomize=True)
@given(steps=STEPS)
def test_blocked_marks_exactly_the_messages_behind_their_group_head(
    steps: list[tuple[Any, ...]],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "heads.db"
        with postroom.connect(f"sqlite:///{path}") as c:
            c.declare_queue("q", max_attempts=100)
            model = _Model(c)
            for op, *args in steps:
                if op in ("ack", "retry", "reject", "release"):
                    model.settle(op, *args)
                else:
                    getattr(model, op)(*args)
                _check_blocked(path)
