"""The worker registry in the KV bucket: one key per worker process
(``wrk.<worker id>``) with its record and the time it expires; expired ones are
dropped when the registry is listed (the bucket has no per-key TTL on 2.9)."""

from __future__ import annotations

import asyncio

from ._core import NatsCore
from ._names import token, untoken

__all__ = ["Workers"]


def _key(worker_id: str) -> str:
    return f"wrk.{token(worker_id)}"


class Workers(NatsCore):
    """``put_worker``, ``list_workers``, ``delete_worker``."""

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
