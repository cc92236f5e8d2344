"""A queue's rate limit on JetStream: its token bucket in one KV key.

The bucket (``rate.<q>``: tokens left and when) is updated by compare-and-set
with the key's revision, so every process of every host shares it. A claim takes
its permits *before* it pulls (as many as it may deliver, at most what it asks
for) and gives back those its pull found no message for, so the limit is never
exceeded, even by claims that race. Each process caches the value and revision
it wrote last: a process that claims alone writes once per claim, without a read.
"""

from __future__ import annotations

from ...model.message import now_ms
from ...model.order import Bucket as Tokens
from ...model.order import burst, take_permits
from ._conn import translated
from ._kv import Bucket

__all__ = ["RateGate"]

_MAX_TRIES = 50  # compare-and-set collisions before a claim gives up its permits


class RateGate:
    """Token buckets of rate-limited queues, shared through the KV bucket."""

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket
        self._cache: dict[str, tuple[Tokens | None, int]] = {}

    async def _read(self, key: str) -> tuple[Tokens | None, int]:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        got = await self.bucket.get(key)
        if got is None:
            return None, 0
        value, revision = got
        return Tokens(float(value["t"]), int(value["a"])), revision

    async def _write(self, key: str, tokens: Tokens, revision: int) -> bool:
        value = {"t": tokens.tokens, "a": tokens.at_ms}
        stored = await self.bucket.cas(key, value, revision)
        if stored is None:
            self._cache.pop(key, None)
            return False
        self._cache[key] = (tokens, stored)
        return True

    async def take(self, key: str, rate: float, wanted: int) -> tuple[int, int]:
        """Take up to ``wanted`` permits: how many, and the milliseconds until the
        next one after them (0: one is there now)."""
        async with translated(self.bucket.jet.where):
            for _ in range(_MAX_TRIES):
                state, revision = await self._read(key)
                permits = take_permits(rate, state, now_ms(), wanted)
                after, wait_ms = permits.after(permits.granted)
                if permits.granted == 0:
                    return 0, wait_ms
                if await self._write(key, after, revision):
                    return permits.granted, wait_ms
        return 0, int(1000 / rate)

    async def give_back(self, key: str, rate: float, unused: int) -> None:
        """Return permits a claim took but found no message for."""
        async with translated(self.bucket.jet.where):
            for _ in range(_MAX_TRIES):
                state, revision = await self._read(key)
                if state is None:
                    return
                full = burst(rate)
                back = Tokens(min(full, state.tokens + unused), state.at_ms)
                if await self._write(key, back, revision):
                    return

    def forget(self, key: str) -> None:
        """Drop the cached bucket (the queue was deleted)."""
        self._cache.pop(key, None)
