"""Samples of every queue's counters and depths, taken by every long-running
process (``postroom worker`` and ``postroom serve``) once per time bucket.

Each process wakes at the start of every bucket (plus a random fraction of a
second, to spread them) and asks the client to take that bucket's sample; the
backend keeps the first one written, so however many processes run, a bucket
has one sample, and any one of them running is enough. On a backend that keeps
no samples the sampler says so once (INFO) and stops.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from ..model.errors import NotSupported
from ..model.message import now_ms
from ..model.samples import STEP_MS

if TYPE_CHECKING:
    from ..client.core import AsyncClient

__all__ = ["Sampler"]

log = logging.getLogger(__name__)

# A sample that takes longer than this is given up (the next bucket tries).
SAMPLE_TIMEOUT_SECONDS = 5.0
# The random delay after a bucket starts, at most this fraction of a step.
SPREAD = 0.2


@dataclass(eq=False)
class Sampler:
    """Takes the sample of each time bucket until cancelled or unsupported."""

    supported: bool = True
    taken: int = 0  # the samples this process stored

    async def sample(self, client: AsyncClient) -> None:
        """Take the current bucket's sample; a failure is logged, never raised."""
        try:
            with anyio.fail_after(SAMPLE_TIMEOUT_SECONDS):
                self.taken += await client.take_sample()
        except NotSupported as exc:
            self.supported = False
            log.info("no samples over time: %s", exc)
        except Exception as exc:
            log.warning("taking a sample failed (%s: %s)", type(exc).__name__, exc)

    async def run(self, client: AsyncClient, stop: anyio.Event | None = None) -> None:
        """Sample now, then once per bucket, until cancelled or ``stop`` is set
        (which also gives up a sample being taken)."""
        async with anyio.create_task_group() as tg:
            if stop is not None:
                tg.start_soon(_cancel_when_set, stop, tg.cancel_scope)
            while self.supported:
                await self.sample(client)
                left_ms = STEP_MS - now_ms() % STEP_MS
                spread_ms = random.random() * SPREAD * STEP_MS
                await anyio.sleep((left_ms + spread_ms) / 1000)
            tg.cancel_scope.cancel()


async def _cancel_when_set(stop: anyio.Event, scope: anyio.CancelScope) -> None:
    await stop.wait()
    scope.cancel()
