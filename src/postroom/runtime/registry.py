"""A worker process's heartbeat in the backend's worker registry.

While a :class:`~postroom.runtime.worker.Worker` runs, a :class:`Heartbeat` writes
its :class:`~postroom.model.workers.WorkerInfo` every ``heartbeat`` seconds;
the record expires after three missed heartbeats, so a worker that died without
a word ages out of ``postroom workers`` and ``/v1/workers``. A clean stop removes
it at once. On a backend without a registry the heartbeat says so once (INFO)
and stops: the worker runs the same.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import anyio

from ..model.errors import NotSupported
from ..model.message import from_ms, now_ms
from ..model.workers import HEARTBEAT_SECONDS, WorkerInfo

if TYPE_CHECKING:
    from ..client.core import AsyncClient

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)

# A heartbeat write that takes longer than this is given up (the next one tries).
WRITE_TIMEOUT_SECONDS = 5.0


@dataclass(eq=False)
class Heartbeat:
    """Writes a worker's record until cancelled; ``snapshot`` reports the
    worker's in flight, handled and failed counts."""

    queues: Sequence[str]
    concurrency: int
    snapshot: Callable[[], tuple[int, int, int]]
    interval: float = HEARTBEAT_SECONDS
    started_at: datetime = field(default_factory=lambda: from_ms(now_ms()))
    supported: bool = True
    worker_id: str = ""  # the client's consumer id, once the first beat ran

    def info(self, worker_id: str) -> WorkerInfo:
        """The record as of now."""
        in_flight, handled, failed = self.snapshot()
        return WorkerInfo(
            id=worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=tuple(self.queues),
            concurrency=self.concurrency,
            in_flight=in_flight,
            handled=handled,
            failed=failed,
            started_at=self.started_at,
            last_seen=from_ms(now_ms()),
            heartbeat=self.interval,
        )

    async def beat(self, client: AsyncClient) -> None:
        """Write the record once; a failure is logged, never raised."""
        self.worker_id = client.consumer
        try:
            with anyio.fail_after(WRITE_TIMEOUT_SECONDS):
                await client.put_worker(self.info(client.consumer))
        except NotSupported as exc:
            self.supported = False
            log.info("no worker registry: %s", exc)
        except Exception as exc:
            log.warning("worker heartbeat failed (%s: %s)", type(exc).__name__, exc)

    async def run(self, client: AsyncClient) -> None:
        """Beat every ``interval`` seconds until cancelled or unsupported."""
        while self.supported:
            await self.beat(client)
            await anyio.sleep(self.interval)

    async def remove(self, client: AsyncClient) -> None:
        """Take the record out at a clean stop (shielded, bounded in time)."""
        if not self.supported:
            return
        with anyio.move_on_after(WRITE_TIMEOUT_SECONDS, shield=True):
            try:
                await client.delete_worker(client.consumer)
            except Exception as exc:
                log.warning("removing the worker record failed: %s", exc)
