"""One queue's consumer inside a worker: prefetch, handlers, outcomes, leases.

A :class:`QueueRunner` claims at most as many messages as it has free concurrency
slots (one ``receive`` call), runs the handler for each in its own task, records the
outcome (ack, retry, dead letter), batches acks that complete together, and keeps
the leases of running handlers alive. :mod:`postroom.runtime.worker` drives the runners
and their graceful shutdown.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from ..model.codec import decode_body
from ..model.errors import DecodeError, LeaseLost, QueueNotFound, Reject, Retry
from ..model.message import Delivery, QueuePolicy
from .durations import DurationRecorder

if TYPE_CHECKING:
    from ..client.core import AsyncClient
    from .app import HandlerSpec

__all__ = ["Job", "Outcome", "QueueRunner", "describe_policy"]

log = logging.getLogger("postroom.runtime.worker")

# Longest single long-poll; ``wait_for_messages`` returns earlier when work may
# be there.
POLL_SECONDS = 10.0
# Pause after an unexpected backend error before claiming again, doubled on each
# error in a row up to the maximum.
ERROR_PAUSE_SECONDS = 1.0
MAX_ERROR_PAUSE_SECONDS = 16.0
# Shortest lease-extension tick, whatever the visibility timeout.
MIN_TICK_SECONDS = 0.05


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
class _Slot:
    """A parked handler slot, woken with a job (or with none: stop)."""

    job: Job | None = None
    ready: anyio.Event = field(default_factory=anyio.Event)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a handler run ended: ``ok``, ``retry``, ``reject``, ``undecodable``,
    ``timeout`` or ``failed``, with the exception that caused it."""

    kind: str
    error: BaseException | None = None


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


@dataclass(eq=False)
class QueueRunner:
    """Consumes one queue with one handler, within ``concurrency`` slots."""

    spec: HandlerSpec
    client: AsyncClient
    concurrency: int
    policy: QueuePolicy
    is_stopping: Callable[[], bool]
    on_job_left: Callable[[], None]
    prepare: Callable[[], Awaitable[QueuePolicy]]
    durations: DurationRecorder | None = None
    jobs: set[Job] = field(default_factory=set)
    abandoned_threads: int = 0
    _wait_scope: anyio.CancelScope | None = None
    _freed: anyio.Event | None = None
    _ack_batch: list[Job] = field(default_factory=list)
    _ack_ready: anyio.Event | None = None
    _limiter: anyio.CapacityLimiter | None = None
    _parked: list[_Slot] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._freed = anyio.Event()
        self._ack_ready = anyio.Event()
        if not self.spec.is_async:
            self._limiter = anyio.CapacityLimiter(self.concurrency)

    @property
    def queue(self) -> str:
        """The queue this runner consumes."""
        return self.spec.queue

    def wake(self) -> None:
        """Interrupt an idle wait (long poll, slot wait) so the loop sees a stop."""
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    # -- receiving -----------------------------------------------------------------

    async def _idle(self, fn: Callable[[], Awaitable[Any]]) -> None:
        with anyio.CancelScope() as scope:
            self._wait_scope = scope
            if self.is_stopping():
                scope.cancel()
            try:
                await fn()
            finally:
                self._wait_scope = None

    async def _wait_freed(self) -> None:
        assert self._freed is not None
        await self._freed.wait()

    async def receive_loop(self, handlers: TaskGroup) -> None:
        """Claim and start work until the worker stops; errors pause, never kill."""
        pause = ERROR_PAUSE_SECONDS
        try:
            while not self.is_stopping():
                try:
                    await self._step(handlers)
                    pause = ERROR_PAUSE_SECONDS
                except Exception as exc:
                    if await self._recover(exc):
                        continue
                    log.error(
                        "receiving from %r failed (%s: %s); trying again in %g s",
                        self.queue,
                        type(exc).__name__,
                        exc,
                        pause,
                        exc_info=exc,
                    )
                    await self._idle(partial(anyio.sleep, pause))
                    pause = min(pause * 2, MAX_ERROR_PAUSE_SECONDS)
        finally:
            self._close_slots()

    async def _recover(self, exc: Exception) -> bool:
        """Recreate a queue (or subscription) deleted under the worker."""
        if not isinstance(exc, QueueNotFound):
            return False
        log.warning("queue %r disappeared; creating it again", self.queue)
        try:
            await self.prepare()
        except Exception:
            return False
        return True

    async def _step(self, handlers: TaskGroup) -> None:
        free = self.concurrency - len(self.jobs)
        if free <= 0:
            self._freed = anyio.Event()
            await self._idle(self._wait_freed)
            return
        got = await self.client.receive(self.queue, max_messages=free)
        if self.is_stopping():
            await self.client.release(got)
            return
        for delivery in got:
            job = Job(delivery)
            self.jobs.add(job)
            if self._parked:
                slot = self._parked.pop()
                slot.job = job
                slot.ready.set()
            else:
                handlers.start_soon(self._serve, job, name=f"postroom:{self.queue}")
        if len(got) < free:
            await self._idle(
                partial(self.client.wait_for_messages, self.queue, POLL_SECONDS)
            )

    # -- running a handler ---------------------------------------------------------

    async def _serve(self, job: Job | None) -> None:
        """A handler slot: runs its job, then waits to be handed the next one (a
        parked slot costs less to wake than a new task costs to start)."""
        while job is not None:
            await self._process(job)
            if self.is_stopping():
                return
            slot = _Slot()
            self._parked.append(slot)
            await slot.ready.wait()
            job = slot.job

    def _close_slots(self) -> None:
        parked, self._parked = self._parked, []
        for slot in parked:
            slot.ready.set()

    async def _process(self, job: Job) -> None:
        outcome = await self._invoke(job)
        if outcome is None:  # cancelled by shutdown: released by the worker
            return
        job.finished = True
        if job.seconds is not None and self.durations is not None:
            self.durations.observe(self.queue, job.seconds)
        if outcome.kind == "ok":  # the ack loop acks it, batched, then lets it go
            self._ack_batch.append(job)
            assert self._ack_ready is not None
            self._ack_ready.set()
            return
        try:
            await self._settle(job, outcome)
        except LeaseLost:
            log.warning(
                "message %s on %r: lease lost before its outcome (%s) was recorded; "
                "it will be delivered again",
                job.delivery.id,
                self.queue,
                outcome.kind,
            )
        except Exception:
            log.exception(
                "message %s on %r: recording outcome %s failed; it will be delivered "
                "again when its lease expires",
                job.delivery.id,
                self.queue,
                outcome.kind,
            )
        finally:
            self._leave(job)

    def _leave(self, job: Job) -> None:
        self.jobs.discard(job)
        assert self._freed is not None
        self._freed.set()
        self.on_job_left()

    async def _invoke(self, job: Job) -> Outcome | None:
        try:
            body = decode_body(job.delivery, self.spec.body_type)
        except DecodeError as exc:
            return Outcome("undecodable", exc)
        except Exception as exc:  # e.g. an annotation pydantic cannot validate
            return Outcome("failed", exc)
        timeout = self.spec.timeout
        deadline = anyio.current_time() + timeout if timeout is not None else math.inf
        # One scope serves both ends: the deadline (timeout) and job.cancel()
        # (shutdown), told apart by job.cancelled.
        started = time.monotonic()
        with anyio.CancelScope(deadline=deadline) as scope:
            job.scope = scope
            if job.cancelled:
                scope.cancel()
            try:
                await self._call(body)
                return Outcome("ok")
            except Retry as exc:
                return Outcome("retry", exc)
            except Reject as exc:
                return Outcome("reject", exc)
            except Exception as exc:
                return Outcome("failed", exc)
            finally:
                job.seconds = time.monotonic() - started
        if job.cancelled or not scope.cancelled_caught:
            return None
        return Outcome(
            "timeout",
            TimeoutError(
                f"handler {self.spec.name} did not finish within {timeout:g} s "
                "(its timeout)"
            ),
        )

    async def _call(self, body: Any) -> None:
        if self.spec.is_async:
            await self.spec.func(body)
            return
        try:
            await anyio.to_thread.run_sync(
                self.spec.func, body, limiter=self._limiter, abandon_on_cancel=True
            )
        except anyio.get_cancelled_exc_class():
            # Python cannot stop a thread: it finishes in the background.
            self.abandoned_threads += 1
            raise

    async def _settle(self, job: Job, outcome: Outcome) -> None:
        d, exc, client = job.delivery, outcome.error, self.client
        if outcome.kind == "retry":
            assert isinstance(exc, Retry)
            await client.fail(d, exc, delay=exc.delay)
        elif outcome.kind == "reject":
            await client.reject(d, exc)
        elif outcome.kind == "undecodable":
            log.warning("message %s on %r is undecodable: %s", d.id, self.queue, exc)
            await client.reject(d, exc, reason="undecodable")
        elif outcome.kind == "timeout":
            await client.fail(d, exc, outcome="timeout")
        else:
            log.info("message %s on %r failed: %r", d.id, self.queue, exc)
            await client.fail(d, exc)

    # -- acks, batched -------------------------------------------------------------

    async def ack_loop(self) -> None:
        """Ack, in one round trip, every handler that succeeded since the last one."""
        while True:
            assert self._ack_ready is not None
            await self._ack_ready.wait()
            self._ack_ready = anyio.Event()
            batch, self._ack_batch = self._ack_batch, []
            try:
                lost = await self.client.ack_many([j.delivery for j in batch])
            except Exception:
                log.exception("acking %d messages on %r failed", len(batch), self.queue)
                lost = []
            for d in lost:
                log.warning(
                    "message %s on %r: lease lost before the ack; it will be (or was) "
                    "delivered again",
                    d.id,
                    self.queue,
                )
            for job in batch:
                self._leave(job)

    # -- leases --------------------------------------------------------------------

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
