"""SQLite does what the reference ``memory://`` backend does, step for step.

A seeded random script of sends (with dedup keys), claims, acks, retries, rejects,
releases, stale acks, redrives and purges runs on both backends through the
``Backend`` API with the very same messages; after every step both must show the
same held messages, depths, counters and dead letters.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from postroom import Delivery, HistoryEntry, Message, QueuePolicy
from postroom.backends.base import Backend, open_backend
from postroom.model.ids import new_id
from postroom.model.message import from_ms, now_ms
from postroom.model.queries import DeadLetterQuery

QUEUE = "parity"
LEASE_MS = 60_000


def _messages(rng: random.Random) -> list[Message]:
    now = from_ms(now_ms())
    return [
        Message(
            id=new_id(),
            queue=QUEUE,
            body=b'{"n":1}',
            headers={"h": str(rng.randint(0, 3))},
            enqueued_at=now,
            available_at=now,
            dedup_key=rng.choice([None, None, "a", "b"]),
        )
        for _ in range(rng.randint(1, 4))
    ]


def _entry(outcome: str) -> HistoryEntry:
    return HistoryEntry(at=from_ms(now_ms()), consumer="parity", outcome=outcome)


def outcomes(history: list[HistoryEntry]) -> tuple[str, ...]:
    return tuple(h.outcome for h in history)


class Side:
    """One backend and the deliveries it handed out, by message id."""

    def __init__(self, backend: Backend) -> None:
        self.b = backend
        self.held: dict[str, Delivery] = {}
        self.stale: dict[str, Delivery] = {}

    async def observe(self) -> tuple[Any, ...]:
        [st] = await self.b.stats([QUEUE])
        dead = await self.b.dead_letters(QUEUE, DeadLetterQuery(1000))
        peek = await self.b.peek(QUEUE, 1000)
        return (
            sorted((d.id, d.attempts) for d in self.held.values()),
            (st.ready, st.delayed, st.in_flight, st.dead),
            (await self.b.counters([QUEUE]))[QUEUE],
            sorted(
                (d.id, d.reason, d.attempts, d.message.redrives, *outcomes(d.history))
                for d in dead
            ),
            sorted(
                (m.id, m.attempts, m.redrives, tuple(m.headers.items())) for m in peek
            ),
        )


async def _step(side: Side, op: str, pick: list[str], batch: list[Message]) -> Any:
    b, held = side.b, side.held
    chosen = [held[i] for i in pick if i in held]
    if op == "send":
        return await b.enqueue(QUEUE, batch, dedup_window_ms=60_000)
    if op == "claim":
        got = await b.claim(QUEUE, 100, LEASE_MS, "parity")
        held.update((d.id, d) for d in got)
        return sorted(d.id for d in got)
    if op == "ack":
        lost = await b.ack(chosen + list(side.stale.values()))
        side.stale.clear()
        for d in chosen:
            held.pop(d.id)
        return sorted(d.id for d in lost)
    if op == "release":
        await b.release(chosen)
        for d in chosen:
            side.stale[d.id] = held.pop(d.id)
        return None
    for d in chosen:  # retry (dead-lettering when attempts are used up) or reject
        held.pop(d.id)
        if op == "reject" or d.attempts >= 3:
            await b.dead_letter(
                d, "rejected" if op == "reject" else "failed", _entry(op)
            )
        else:
            await b.retry(d, 0, _entry("failed"))
    if op == "redrive":
        return sorted(await b.redrive(QUEUE, ids=None, to=QUEUE, limit=2))
    if op == "purge":
        return await b.purge(QUEUE, dead=True)
    return None


OPS = ["send", "send", "claim", "claim", "ack", "retry", "reject", "release"]
OPS += ["redrive", "purge"]


async def _run(memory_url: str, sqlite_url: str, seed: int) -> None:
    rng = random.Random(seed)
    sides = [Side(open_backend(memory_url)), Side(open_backend(sqlite_url))]
    policy = QueuePolicy(max_attempts=3, visibility_timeout=60.0)
    for side in sides:
        await side.b.connect()
        await side.b.declare_queue(QUEUE, policy)
    try:
        for _ in range(150):
            op = rng.choice(OPS[:-1] if rng.random() < 0.9 else OPS)
            ids = sorted(sides[0].held)
            pick = rng.sample(ids, k=min(len(ids), rng.randint(1, 3)))
            batch = _messages(rng) if op == "send" else []
            results = [await _step(s, op, pick, batch) for s in sides]
            assert results[0] == results[1], op
            views = [await s.observe() for s in sides]
            assert views[0] == views[1], op
    finally:
        for side in sides:
            await side.b.aclose()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sqlite_matches_memory_step_for_step(tmp_path: Path, seed: int) -> None:
    memory = f"memory://parity-{uuid.uuid4().hex[:10]}"
    asyncio.run(_run(memory, f"sqlite:///{tmp_path}/parity.db", seed))
