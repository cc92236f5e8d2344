"""A small key-value store on a JetStream stream (what NATS KV is), and counters
kept in it.

Keys are subjects ``$KV.<bucket>.<key>`` of a stream that keeps one message per
subject. A value's revision is its stream sequence; compare-and-set is a publish
with ``Nats-Expected-Last-Subject-Sequence``. Deleting a key purges its subject,
so listing keys (the stream's subjects) never shows deleted ones.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import anyio

import nats.js.errors
from nats.js.api import DiscardPolicy, StorageType, StreamConfig

from ...model.errors import QueueNotFound
from ._conn import Jet, translated

__all__ = ["Bucket", "Tally"]

_WRONG_LAST_SEQUENCE = 10071


class Bucket:
    """One KV bucket."""

    def __init__(self, jet: Jet, name: str, *, max_age: float | None = None) -> None:
        self.jet = jet
        self.name = name
        self.stream = f"KV_{name}"
        self._max_age = max_age

    async def create(self) -> None:
        """Create the bucket's stream (idempotent)."""
        await self.jet.ensure_stream(
            StreamConfig(
                name=self.stream,
                subjects=[f"$KV.{self.name}.>"],
                max_msgs_per_subject=1,
                discard=DiscardPolicy.NEW,
                storage=StorageType.FILE,
                allow_rollup_hdrs=True,
                max_age=self._max_age,
            )
        )

    def _subject(self, key: str) -> str:
        return f"$KV.{self.name}.{key}"

    async def get(self, key: str) -> tuple[Any, int] | None:
        """The JSON value of ``key`` and its revision, or ``None``."""
        raw = await self.jet.get(self.stream, self._subject(key), last=True)
        if raw is None or not raw.data:
            return None
        return json.loads(raw.data), int(raw.seq or 0)

    async def put(self, key: str, value: Any) -> int:
        """Set ``key``; its new revision."""
        ack = await self.jet.publish(
            self._subject(key),
            json.dumps(value).encode(),
            {"Nats-Msg-Id": uuid.uuid4().hex},
            stream=self.stream,
            queue=self.name,
        )
        return int(ack.seq)

    async def cas(self, key: str, value: Any, revision: int) -> int | None:
        """Set ``key`` if its revision is still ``revision`` (0: absent); the new
        revision, or ``None`` when another writer came first."""
        headers = {
            "Nats-Expected-Last-Subject-Sequence": str(revision),
            # A publish retried on reconnect counts once.
            "Nats-Msg-Id": uuid.uuid4().hex,
        }
        try:
            ack = await self.jet.publish(
                self._subject(key),
                json.dumps(value).encode(),
                headers,
                stream=self.stream,
                queue=self.name,
            )
        except Exception as exc:
            cause = exc.__cause__ if exc.__cause__ is not None else exc
            if (
                isinstance(cause, nats.js.errors.APIError)
                and cause.err_code == _WRONG_LAST_SEQUENCE
            ):
                return None
            raise
        return int(ack.seq)

    async def delete(self, key: str) -> None:
        """Remove ``key`` (no marker is left)."""
        await self.jet.purge(self.stream, self.name, self._subject(key))

    async def keys(self, pattern: str) -> list[str]:
        """Keys matching a subject pattern (``pol.*``), sorted."""
        strip = len(self.name) + 5
        try:
            info = await self.jet.stream_info(
                self.stream, self.name, subjects_filter=self._subject(pattern)
            )
        except QueueNotFound:
            return []
        return sorted(s[strip:] for s in (info.state.subjects or {}))


class Tally:
    """Counters (JSON objects of integers under one key) updated by
    compare-and-set, with concurrent increments of one key merged into one write.

    Each process caches the last value and revision it wrote, so that a key one
    process updates alone costs one round trip per write.
    """

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket
        self._pending: dict[str, dict[str, int]] = {}
        self._locks: dict[str, anyio.Lock] = {}
        self._cache: dict[str, tuple[dict[str, int], int]] = {}

    async def add(self, key: str, increments: Mapping[str, int]) -> None:
        """Add ``increments``; returns once they are stored."""
        pending = self._pending.setdefault(key, {})
        for name, n in increments.items():
            if n:
                pending[name] = pending.get(name, 0) + n
        lock = self._locks.setdefault(key, anyio.Lock())
        async with lock:
            todo = self._pending.pop(key, None)
            if not todo:
                return  # an earlier writer took ours along
            try:
                await self._apply(key, todo)
            except BaseException:
                merged = self._pending.setdefault(key, {})
                for name, n in todo.items():
                    merged[name] = merged.get(name, 0) + n
                raise

    async def _apply(self, key: str, todo: dict[str, int]) -> None:
        async with translated(self.bucket.jet.where):
            while True:
                cached = self._cache.get(key)
                current, revision = cached if cached else await self._read(key)
                new = dict(current)
                for name, n in todo.items():
                    new[name] = new.get(name, 0) + n
                stored = await self.bucket.cas(key, new, revision)
                if stored is not None:
                    self._cache[key] = (new, stored)
                    return
                self._cache.pop(key, None)

    async def _read(self, key: str) -> tuple[dict[str, int], int]:
        got = await self.bucket.get(key)
        if got is None:
            return {}, 0
        value, revision = got
        return {str(k): int(v) for k, v in dict(value).items()}, revision

    async def read(self, key: str) -> dict[str, int]:
        """The stored counters of ``key`` (fresh from the server)."""
        value, revision = await self._read(key)
        if revision:
            self._cache[key] = (value, revision)
        return value

    def forget(self, key: str) -> None:
        """Drop the cached value (the key was deleted)."""
        self._cache.pop(key, None)
