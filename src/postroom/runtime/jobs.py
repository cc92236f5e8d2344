"""What the consumer loop handles: a claimed job, a parked slot, an outcome."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

from ..model.message import Delivery, ErrorInfo, QueuePolicy

if TYPE_CHECKING:
    from .app import HandlerSpec

__all__ = ["AttemptFailed", "Job", "Outcome", "Slot", "describe_policy"]


class AttemptFailed(Exception):
    """Raised by a built-in handler (the push POST) to record a failed attempt
    with its own error text and outcome (``failed`` or ``timeout``), without a
    traceback."""

    def __init__(self, info: ErrorInfo, outcome: str = "failed") -> None:
        super().__init__(info.message)
        self.info = info
        self.outcome = outcome


@dataclass(eq=False, slots=True)
class Job:
    """One claimed delivery, from claim until its outcome is recorded."""

    delivery: Delivery
    scope: anyio.CancelScope | None = None
    cancelled: bool = False
    finished: bool = False
    seconds: float | None = None  # how long the handler ran, once it has

    def cancel(self) -> None:
        """Stop the handler (shutdown); the delivery is then released, not failed."""
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()


@dataclass(eq=False, slots=True)
class Slot:
    """A parked handler slot, woken with a job (or with none: stop)."""

    job: Job | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a handler run ended: ``ok``, ``retry``, ``reject``, ``undecodable``,
    ``timeout`` or ``failed``, with the exception that caused it."""

    kind: str
    error: BaseException | ErrorInfo | None = None


def describe_policy(spec: HandlerSpec, concurrency: int, policy: QueuePolicy) -> str:
    """One log line with the effective policy of a handler's queue."""
    b = policy.backoff
    kind = "async" if spec.is_async else "thread"
    timeout = f"{spec.timeout:g} s" if spec.timeout is not None else "none"
    return (
        f"queue {spec.queue!r} -> {spec.name} ({kind}, concurrency {concurrency}, "
        f"timeout {timeout}): max_attempts={policy.max_attempts}, "
        f"visibility_timeout={policy.visibility_timeout:g} s, backoff={b.initial:g} s "
        f"x{b.factor:g} up to {b.max:g} s{' with jitter' if b.jitter else ''}, "
        f"dead letters -> {policy.dead_letter!r}"
    )
