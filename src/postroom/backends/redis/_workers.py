"""The worker registry in Redis: a hash of records (worker id -> JSON) and a
sorted set of their expiry times, both under the prefix's hash tag
(``{prefix}:workers``), so that a heartbeat is one ``MULTI``/``EXEC`` on one
shard of a cluster.

The samples over time: a hash (bucket -> JSON) with two sorted sets of its
buckets, one scored by bucket (to read a range) and one by expiry time.
"""

from __future__ import annotations

from redis.asyncio import Redis

__all__ = ["delete_worker", "list_samples", "list_workers", "put_sample", "put_worker"]


def _keys(prefix: str) -> tuple[str, str]:
    tag = f"{{{prefix}}}"
    return f"{tag}:workers", f"{tag}:workers:expiry"


async def put_worker(
    redis: Redis, prefix: str, worker_id: str, record: str, expires_ms: int
) -> None:
    """Store or replace one worker's record until ``expires_ms``."""
    records, expiry = _keys(prefix)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(records, worker_id, record)
        pipe.zadd(expiry, {worker_id: expires_ms})
        await pipe.execute()


async def list_workers(redis: Redis, prefix: str, now_ms: int) -> list[str]:
    """The records not expired, after dropping the expired ones."""
    records, expiry = _keys(prefix)
    gone = await redis.zrangebyscore(expiry, "-inf", now_ms)
    if gone:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hdel(records, *gone)
            pipe.zrem(expiry, *gone)
            await pipe.execute()
    found = await redis.hgetall(records)
    return [
        v.decode() if isinstance(v, bytes) else str(v) for _, v in sorted(found.items())
    ]


async def delete_worker(redis: Redis, prefix: str, worker_id: str) -> None:
    """Forget one worker's record."""
    records, expiry = _keys(prefix)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hdel(records, worker_id)
        pipe.zrem(expiry, worker_id)
        await pipe.execute()


def _sample_keys(prefix: str) -> tuple[str, str, str]:
    tag = f"{{{prefix}}}"
    return f"{tag}:samples", f"{tag}:samples:buckets", f"{tag}:samples:expiry"


async def put_sample(
    redis: Redis, prefix: str, bucket_ms: int, record: str, expires_ms: int
) -> bool:
    """Store the sample of a bucket unless it has one; whether it was stored."""
    records, buckets, expiry = _sample_keys(prefix)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hsetnx(records, str(bucket_ms), record)
        pipe.zadd(buckets, {str(bucket_ms): bucket_ms}, nx=True)
        pipe.zadd(expiry, {str(bucket_ms): expires_ms}, nx=True)
        stored, _, _ = await pipe.execute()
    return bool(stored)


async def list_samples(
    redis: Redis, prefix: str, since_ms: int, now_ms: int
) -> list[tuple[int, str]]:
    """The samples from ``since_ms`` on, after dropping the expired ones."""
    records, buckets, expiry = _sample_keys(prefix)
    gone = await redis.zrangebyscore(expiry, "-inf", now_ms)
    if gone:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.hdel(records, *gone)
            pipe.zrem(buckets, *gone)
            pipe.zrem(expiry, *gone)
            await pipe.execute()
    found = await redis.zrangebyscore(buckets, since_ms, "+inf")
    names = [m.decode() if isinstance(m, bytes) else str(m) for m in found]
    if not names:
        return []
    values = await redis.hmget(records, names)
    return [
        (int(bucket), v.decode() if isinstance(v, bytes) else str(v))
        for bucket, v in zip(names, values, strict=True)
        if v is not None
    ]
