"""The worker registry in the KV bucket: one key per worker process
(``wrk.<worker id>``) with its record and the time it expires; expired ones are
dropped when the registry is listed (the bucket has no per-key TTL on 2.9).

The samples over time likewise: one key per time bucket (``smp.<bucket ms>``),
written by compare-and-set from revision 0, so the first writer wins."""

from __future__ import annotations

import asyncio

from ._core import NatsCore
from ._names import token, untoken

__all__ = ["Workers"]


def _key(worker_id: str) -> str:
    return f"wrk.{token(worker_id)}"


class Workers(NatsCore):
    """``put_worker``, ``list_workers``, ``delete_worker``, ``put_sample``,
    ``list_samples``."""

    async def put_worker(self, worker_id: str, record: str, expires_ms: int) -> None:
        await self.meta.put(_key(worker_id), {"r": record, "x": expires_ms})

    async def list_workers(self, now_ms: int) -> list[str]:
        keys = await self.meta.keys("wrk.*")
        found = await asyncio.gather(*(self.meta.get(k) for k in keys))
        live: list[tuple[str, str]] = []
        for key, got in zip(keys, found, strict=True):
            if got is None:
                continue
            value = got[0]
            if int(value["x"]) <= now_ms:
                await self.meta.delete(key)
                continue
            live.append((untoken(key.partition(".")[2]), str(value["r"])))
        return [record for _, record in sorted(live)]

    async def delete_worker(self, worker_id: str) -> None:
        await self.meta.delete(_key(worker_id))

    async def put_sample(self, bucket_ms: int, record: str, expires_ms: int) -> bool:
        value = {"r": record, "x": expires_ms}
        return await self.meta.cas(f"smp.{bucket_ms}", value, 0) is not None

    async def list_samples(self, since_ms: int, now_ms: int) -> list[tuple[int, str]]:
        keys = await self.meta.keys("smp.*")
        buckets = sorted(int(k.partition(".")[2]) for k in keys)
        for bucket in [b for b in buckets if b < since_ms]:
            # Drop the expired ones from the oldest on (they expire in order).
            got = await self.meta.get(f"smp.{bucket}")
            if got is not None and int(got[0]["x"]) > now_ms:
                break
            await self.meta.delete(f"smp.{bucket}")
        wanted = [b for b in buckets if b >= since_ms]
        found = await asyncio.gather(*(self.meta.get(f"smp.{b}") for b in wanted))
        kept: list[tuple[int, str]] = []
        for bucket, got in zip(wanted, found, strict=True):
            if got is None:
                continue
            if int(got[0]["x"]) <= now_ms:
                await self.meta.delete(f"smp.{bucket}")
                continue
            kept.append((bucket, str(got[0]["r"])))
        return kept
