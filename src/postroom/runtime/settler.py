"""The outcomes of the consumer loop, batched: acks, retries, dead letters.

Handlers that finish together have their outcomes recorded in one
:meth:`AsyncClient.settle <postroom.AsyncClient.settle>` call (one round trip,
one transaction where the backend has them), which also claims as many new
messages when every slot was taken.
"""

from __future__ import annotations

import asyncio
import logging
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anyio.abc import TaskGroup

from ..model.message import Delivery, QueuePolicy
from ..model.settlement import Failure, Settled
from ..model.validate import MAX_BATCH
from .jobs import Job
from .outcomes import log_settled

if TYPE_CHECKING:
    from ..client.core import AsyncClient

__all__ = ["Done", "Settler"]

log = logging.getLogger("postroom.runtime.worker")


@dataclass(frozen=True, slots=True)
class Done:
    """A finished job waiting for its outcome to be recorded: an ack, or the
    ``failure`` of a handler that ended with outcome ``kind``."""

    job: Job
    kind: str = "ok"
    failure: Failure | None = None


class Settler:
    """Records the outcomes of a runner's finished jobs, batched (the one settle
    loop of :class:`~postroom.runtime.runner.QueueRunner`)."""

    client: AsyncClient
    policy: QueuePolicy
    jobs: set[Job]
    is_stopping: Callable[[], bool]
    _settle_batch: list[Done]
    _settle_ready: asyncio.Event | None
    _handlers: TaskGroup | None

    @property
    @abstractmethod
    def queue(self) -> str:
        """The queue whose messages are settled (the runner's)."""

    @abstractmethod
    async def _start(self, got: list[Delivery], handlers: TaskGroup) -> None:
        """Hand claimed deliveries to handler slots."""

    @abstractmethod
    def _leave(self, job: Job) -> None:
        """Forget a job whose outcome is recorded (its slot is free)."""

    def finished(self, done: Done) -> None:
        """Queue a finished job's outcome for the next batch."""
        self._settle_batch.append(done)
        assert self._settle_ready is not None
        self._settle_ready.set()

    async def settle_loop(self) -> None:
        """Record, in one call, every outcome since the last one.

        When every slot is taken (the receive loop waits for one), the same call
        claims as many messages as the batch frees, and hands them out.
        """
        while True:
            assert self._settle_ready is not None
            await self._settle_ready.wait()
            self._settle_ready = asyncio.Event()
            batch, self._settle_batch = self._settle_batch, []
            handlers = self._handlers if not self.is_stopping() else None
            done = await self._settle(batch, handlers is not None)
            jobs = [d.job for d in batch]
            self.jobs.difference_update(jobs)
            if done.received and handlers is not None:
                await self._start(done.received, handlers)
            for job in jobs:
                self._leave(job)

    async def _settle(self, batch: list[Done], receive: bool) -> Settled:
        acks = [d.job.delivery for d in batch if d.failure is None]
        failures = [d.failure for d in batch if d.failure is not None]
        try:
            done = await self.client.settle(
                acks,
                failures,
                receive=self.queue if receive else None,
                max_messages=min(len(batch), MAX_BATCH),
            )
        except Exception:
            log.exception(
                "recording the outcomes of %d messages on %r failed; they will be "
                "delivered again when their leases expire",
                len(batch),
                self.queue,
            )
            return Settled()
        self._log(batch, done)
        return done

    def _log(self, batch: list[Done], done: Settled) -> None:
        lost = {d.receipt for d in done.lost}
        dead = {d.receipt for d in done.dead_lettered}
        for d in batch:
            delivery = d.job.delivery
            if delivery.receipt in lost:
                log.warning(
                    "message %s on %r: lease lost before its outcome (%s) was "
                    "recorded; it will be (or was) delivered again",
                    delivery.id,
                    self.queue,
                    "ack" if d.failure is None else d.kind,
                )
            elif d.failure is not None:
                dead_lettered = delivery.receipt in dead
                log_settled(self.policy, d.failure, d.kind, dead_lettered=dead_lettered)
