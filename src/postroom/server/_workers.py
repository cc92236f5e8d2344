"""``GET /v1/workers``: the worker processes registered with a heartbeat."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from pydantic import BaseModel

from ..model.workers import WorkerInfo
from ._api import api
from ._routing import Ctx

__all__ = ["WorkerList", "WorkerModel", "visible_workers"]


class WorkerModel(BaseModel):
    """One worker process: host, pid, the queues it consumes (those the token
    may see), its concurrency, messages in flight, handled (acked) and failed
    attempts since it started, and its last heartbeat."""

    id: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    in_flight: int
    handled: int
    failed: int
    started_at: datetime
    last_seen: datetime
    heartbeat: float

    @classmethod
    def of(cls, w: WorkerInfo, queues: list[str]) -> WorkerModel:
        """From a registry record, showing only ``queues``."""
        return cls.model_validate({**asdict(w), "queues": queues})


class WorkerList(BaseModel):
    """Worker processes seen within their last three heartbeats."""

    workers: list[WorkerModel]


async def visible_workers(ctx: Ctx) -> list[WorkerModel]:
    """The registered workers that consume a queue the caller's token covers
    (every worker on an open server), with only those queues."""
    out = []
    for w in await ctx.client.workers():
        queues = [q for q in w.queues if ctx.visible(q)]
        if queues or (ctx.token is None):
            out.append(WorkerModel.of(w, queues))
    return out


@api.op(
    "GET", "/v1/workers", scope="admin", response=WorkerList, tag="workers",
    resource=None, errors=(501,),
)  # fmt: skip
async def list_workers(ctx: Ctx, _: None) -> WorkerList:
    """Worker processes with their heartbeats (501 when the backend keeps none)."""
    return WorkerList(workers=await visible_workers(ctx))
