"""The Redis backend off the send/lease path: queue policies, inspection, counters,
durations and the worker registry."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from ...model.message import Message, QueuePolicy, QueueStats, now_ms
from ...model.order import burst
from ...model.stats import COUNTERS, DurationHistogram, duration_cells
from . import _durations, _workers
from ._base import RedisBase
from ._records import as_text
from ._scripts import Call
from ._translate import translated

__all__ = ["RedisInspect"]


class RedisInspect(RedisBase):
    """Queue policies, inspection and the registries of the Redis backend."""

    # -- queues --------------------------------------------------------------------

    @translated
    async def declare_queue(
        self, queue: str, policy: QueuePolicy, *, replace: bool = True
    ) -> QueuePolicy:
        data = json.dumps(policy.to_dict())
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.key(queue, "policy"), data, nx=not replace)
            pipe.get(self.key(queue, "policy"))
            pipe.sadd(self.glob.queues, queue)
            if replace and policy.rate_limit is None:
                pipe.delete(self.key(queue, "bucket"))
            _, stored, *_ = await pipe.execute()
        kept = QueuePolicy.from_dict(json.loads(stored)) if stored else policy
        if kept.rate_limit is not None:
            await self._keep_bucket(queue, kept.rate_limit)
        return kept

    async def _keep_bucket(self, queue: str, rate_limit: float) -> None:
        """Give a rate-limited queue its token bucket (a new one is full, an
        existing one keeps its tokens; claims cap them at the burst)."""
        full = burst(rate_limit)
        key = self.key(queue, "bucket")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"rate": repr(rate_limit), "burst": repr(full)})
            pipe.hsetnx(key, "tokens", repr(full))
            await pipe.execute()

    @translated
    async def get_policy(self, queue: str) -> QueuePolicy | None:
        stored = await self.redis.get(self.key(queue, "policy"))
        return QueuePolicy.from_dict(json.loads(stored)) if stored else None

    @translated
    async def list_queues(self) -> list[str]:
        members = await self.redis.smembers(self.glob.queues)
        return sorted(as_text(m) for m in members)

    @translated
    async def delete_queue(self, queue: str) -> bool:
        # Every key of the queue shares its hash tag: one DEL, one shard.
        keys = [*self.keys(queue), _durations.durations_key(self.prefix, queue)]
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.srem(self.glob.queues, queue)
            pipe.delete(*keys)
            removed, deleted = await pipe.execute()
        return bool(removed or deleted)

    # -- inspection ----------------------------------------------------------------

    @translated
    async def peek(self, queue: str, limit: int) -> list[Message]:
        from ._records import decode_message

        if limit < 1:
            return []
        ids = [
            as_text(m)
            for m in await self.redis.zrange(self.key(queue, "live"), 0, limit - 1)
        ]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hmget(self.key(queue, "msg"), ids)
            pipe.hmget(self.key(queue, "att"), ids)
            payloads, attempts = await pipe.execute()
        return [
            decode_message(mid, queue, p, int(a or 0))
            for mid, p, a in zip(ids, payloads, attempts, strict=True)
            if p is not None
        ]

    @translated
    async def stats(self, queues: Sequence[str]) -> list[QueueStats]:
        now = now_ms()
        calls: list[Call] = [("stats", self.script_keys(q), [now]) for q in queues]
        results = await self.scripts.run_many(calls) if calls else []
        out = []
        for name, (ready, delayed, in_flight, dead, oldest) in zip(
            queues, results, strict=True
        ):
            age = None if int(oldest) < 0 else max(0.0, (now - int(oldest)) / 1000)
            out.append(QueueStats(name, ready, delayed, in_flight, dead, age))
        return out

    @translated
    async def purge(self, queue: str, *, dead: bool) -> int:
        what = "dead" if dead else "live"
        return int(await self.scripts.run("purge", self.script_keys(queue), [what]))

    @translated
    async def counters(self, queues: Sequence[str]) -> dict[str, dict[str, int]]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for q in queues:
                pipe.hgetall(self.key(q, "counters"))
            results = await pipe.execute()
        out: dict[str, dict[str, int]] = {}
        for q, raw in zip(queues, results, strict=True):
            got = {k.decode(): int(v) for k, v in raw.items()}
            out[q] = {name: got.get(name, 0) for name in COUNTERS}
        return out

    @translated
    async def record_durations(
        self, queue: str, observations: Mapping[str, int], count: int, sum_ms: int
    ) -> None:
        cells = duration_cells(observations, count, sum_ms)
        await _durations.record_durations(self.redis, self.prefix, queue, cells)

    @translated
    async def durations(self, queues: Sequence[str]) -> dict[str, DurationHistogram]:
        return await _durations.durations(self.redis, self.prefix, queues)

    @translated
    async def put_worker(self, worker_id: str, record: str, expires_ms: int) -> None:
        await _workers.put_worker(
            self.redis, self.prefix, worker_id, record, expires_ms
        )

    @translated
    async def list_workers(self, now_ms: int) -> list[str]:
        return await _workers.list_workers(self.redis, self.prefix, now_ms)

    @translated
    async def delete_worker(self, worker_id: str) -> None:
        await _workers.delete_worker(self.redis, self.prefix, worker_id)

    @translated
    async def put_sample(self, bucket_ms: int, record: str, expires_ms: int) -> bool:
        return await _workers.put_sample(
            self.redis, self.prefix, bucket_ms, record, expires_ms
        )

    @translated
    async def list_samples(self, since_ms: int, now_ms: int) -> list[tuple[int, str]]:
        return await _workers.list_samples(self.redis, self.prefix, since_ms, now_ms)

    # -- optional ------------------------------------------------------------------

    @translated
    async def sweep(self, queue: str) -> None:
        await self.scripts.run("stats", self.script_keys(queue), [now_ms()])
