"""A queue's rate limit on SQLite: its token bucket is a row of ``postroom_buckets``,
read and written in the claim's own transaction (the rules are in
:mod:`postroom.model.order`)."""

from __future__ import annotations

import json
import sqlite3

from ...model.order import Bucket, Permits, take_permits
from ._conn import QUERIES as Q

__all__ = ["held_back", "permits", "rate_limit", "spend"]

# The rate limit of each stored policy text seen (policies rarely change).
_RATES: dict[str, float | None] = {}


def rate_limit(policy_json: str) -> float | None:
    """The ``rate_limit`` of a stored policy (JSON text)."""
    rate = _RATES.get(policy_json, -1.0)
    if rate == -1.0:
        if len(_RATES) > 1024:
            _RATES.clear()
        found = json.loads(policy_json).get("rate_limit")
        rate = _RATES[policy_json] = None if found is None else float(found)
    return rate


def permits(
    conn: sqlite3.Connection, queue: str, rate: float, now: int, wanted: int
) -> Permits:
    """What the queue's bucket allows a claim of up to ``wanted`` at ``now``."""
    row = conn.execute(Q["bucket_get"], (queue,)).fetchone()
    bucket = None if row is None else Bucket(float(row[0]), int(row[1]))
    return take_permits(rate, bucket, now, wanted)


def held_back(
    conn: sqlite3.Connection,
    queue: str,
    rate: float,
    now: int,
    wanted: int,
    due: dict[str, int],
) -> bool:
    """A look at the bucket without the write lock: whether it holds back every
    delivery now; ``due[queue]`` is set to when its next permit comes."""
    ahead = permits(conn, queue, rate, now, wanted)
    due[queue] = now + (0 if ahead.granted else ahead.after(0)[1])
    return not ahead.granted


def spend(conn: sqlite3.Connection, queue: str, allowed: Permits, taken: int) -> int:
    """Store the bucket once ``taken`` deliveries were made (inside the claim's
    write transaction); return the milliseconds until its next permit."""
    bucket, wait_ms = allowed.after(taken)
    conn.execute(Q["bucket_put"], (queue, bucket.tokens, bucket.at_ms))
    return wait_ms
