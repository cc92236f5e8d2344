"""The lease keeper of the consumer loop: running handlers keep their leases."""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from typing import TYPE_CHECKING

import anyio

from ..model.errors import LeaseLost
from ..model.message import QueuePolicy
from .jobs import Job

if TYPE_CHECKING:
    from ..client.core import AsyncClient

__all__ = ["MIN_TICK_SECONDS", "LeaseKeeper"]

log = logging.getLogger("postroom.runtime.worker")

# Shortest lease-extension tick, whatever the visibility timeout.
MIN_TICK_SECONDS = 0.05


class LeaseKeeper:
    """Extends the leases of a runner's jobs whose handlers still run (the one
    lease keeper of :class:`~postroom.runtime.runner.QueueRunner`, for handlers
    and pushes alike)."""

    client: AsyncClient
    policy: QueuePolicy
    jobs: set[Job]

    @property
    @abstractmethod
    def queue(self) -> str:
        """The queue whose leases are kept (the runner's)."""

    async def extend_loop(self) -> None:
        """Every visibility_timeout/3, extend the leases that would expire soon."""
        while True:
            await anyio.sleep(max(self.policy.visibility_timeout / 3, MIN_TICK_SECONDS))
            try:
                self.policy = await self.client.queue_policy(self.queue)
            except Exception:
                log.exception("reading the policy of %r failed", self.queue)
            await self.extend_due()

    async def extend_due(self) -> None:
        """Extend by visibility_timeout each lease with less than 2/3 of it left."""
        vt = self.policy.visibility_timeout
        horizon = time.time() + vt * 2 / 3
        for job in list(self.jobs):
            if job.delivery.lease_expires_at.timestamp() >= horizon:
                continue
            try:
                job.delivery = await self.client.extend(job.delivery, vt)
            except LeaseLost:
                if job in self.jobs and not job.finished:
                    log.warning(
                        "message %s on %r: lease lost while its handler runs (the "
                        "worker was stalled past the visibility timeout)",
                        job.delivery.id,
                        self.queue,
                    )
            except Exception:
                log.exception("extending the lease of %s failed", job.delivery.id)
