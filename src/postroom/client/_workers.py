"""The worker registry of :class:`~postroom.client.core.AsyncClient`."""

from __future__ import annotations

from ..model.errors import InvalidArgument
from ..model.message import now_ms
from ..model.workers import MISSED_HEARTBEATS, WorkerInfo
from ._base import ClientBase

__all__ = ["WorkerRegistry"]


class WorkerRegistry(ClientBase):
    """Worker processes registered in the backend with a heartbeat."""

    async def workers(self) -> list[WorkerInfo]:
        """The worker processes seen within their last few heartbeats, by host and
        pid. Raises :class:`NotSupported` on a backend without a registry."""
        records = await (await self._b()).list_workers(now_ms())
        infos = [WorkerInfo.loads(r) for r in records]
        return sorted(infos, key=lambda w: (w.host, w.pid, w.id))

    async def put_worker(self, info: WorkerInfo) -> None:
        """Write ``info`` (a heartbeat); it expires after ``MISSED_HEARTBEATS``
        heartbeats without another."""
        if not info.id or info.heartbeat <= 0:
            raise InvalidArgument("a worker record needs an id and a heartbeat > 0 s")
        ttl_ms = round(info.heartbeat * MISSED_HEARTBEATS * 1000)
        await (await self._b()).put_worker(info.id, info.dumps(), now_ms() + ttl_ms)

    async def delete_worker(self, worker_id: str) -> None:
        """Remove a worker's record (it stopped)."""
        await (await self._b()).delete_worker(worker_id)
