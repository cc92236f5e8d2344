"""The worker registry in Redis: a hash of records (worker id -> JSON) and a
sorted set of their expiry times, both under the prefix's hash tag
(``{prefix}:workers``), so that a heartbeat is one ``MULTI``/``EXEC`` on one
shard of a cluster."""

from __future__ import annotations

from redis.asyncio import Redis

__all__ = ["delete_worker", "list_workers", "put_worker"]


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
