"""The one consumer loop: a queue, a handler, slots, outcomes, leases.

A :class:`QueueRunner` claims at most as many messages as it has free concurrency
slots (one ``receive`` call), runs the handler for each in its own task, records the
outcome (ack, retry, dead letter), batched with those that complete together
(:mod:`postroom.runtime.settler`), and keeps
the leases of running handlers alive. Idle, it blocks in
:meth:`AsyncClient.wait_for_messages <postroom.AsyncClient.wait_for_messages>`
(the wait ``receive(wait=...)`` long-polls with too).

It serves every consumer of the runtime: the handlers of a worker
(:mod:`postroom.runtime.worker` drives several runners and their graceful
shutdown) and push subscriptions, whose handler is an HTTP POST
(:mod:`postroom.runtime.push`, one runner per subscription, run by :meth:`serve`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from ..model import tracing
from ..model.codec import decode_body
from ..model.errors import DecodeError, QueueNotFound, Reject, Retry
from ..model.message import Delivery, QueuePolicy
from .durations import DurationRecorder
from .jobs import AttemptFailed, Job, Outcome, Slot, describe_policy
from .leases import LeaseKeeper
from .outcomes import failure_of, settled_event
from .settler import Done, Settler

if TYPE_CHECKING:
    from ..client.core import AsyncClient
    from .app import HandlerSpec

__all__ = [
    "AttemptFailed",
    "Job",
    "Outcome",
    "QueueRunner",
    "describe_policy",
]

log = logging.getLogger("postroom.runtime.worker")

# Longest single long-poll; ``wait_for_messages`` returns earlier when work may
# be there.
POLL_SECONDS = 10.0
# Pause after an unexpected backend error before claiming again, doubled on each
# error in a row up to the maximum.
ERROR_PAUSE_SECONDS = 1.0
MAX_ERROR_PAUSE_SECONDS = 16.0


@dataclass(eq=False)
class QueueRunner(Settler, LeaseKeeper):
    """Consumes one queue with one handler, within ``concurrency`` slots.

    ``prepare`` recreates the queue when it disappears (a worker's queue or
    subscription) and returns its policy, or ``None`` when it is gone for good
    (a deleted push subscription): then the runner stops receiving.
    """

    spec: HandlerSpec
    client: AsyncClient
    concurrency: int
    policy: QueuePolicy
    is_stopping: Callable[[], bool]
    on_job_left: Callable[[], None]
    prepare: Callable[[], Awaitable[QueuePolicy | None]]
    durations: DurationRecorder | None = None
    poll: float = POLL_SECONDS
    gone: bool = False
    jobs: set[Job] = field(default_factory=set)
    abandoned_threads: int = 0
    handled: int = 0  # handlers that succeeded (acked)
    failed: int = 0  # attempts that failed (retried, rejected, dead-lettered)
    _wait_scope: anyio.CancelScope | None = None
    _freed: asyncio.Event | None = None
    _settle_batch: list[Done] = field(default_factory=list)
    _settle_ready: asyncio.Event | None = None
    _limiter: anyio.CapacityLimiter | None = None
    _parked: list[Slot] = field(default_factory=list)
    _handlers: TaskGroup | None = None

    def __post_init__(self) -> None:
        # asyncio's events, not anyio's: every backend runs on asyncio, and an
        # anyio event looks the async library up on each use (the hot path).
        self._freed = asyncio.Event()
        self._settle_ready = asyncio.Event()
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

    async def serve(self) -> None:
        """Run this runner on its own until it stops (``is_stopping`` or its queue
        gone): receive, handle, ack, keep leases; then let the handlers in flight
        finish and their acks complete. Cancelled, it releases the unfinished
        messages without counting an attempt."""
        async with anyio.create_task_group() as service:
            service.start_soon(self.settle_loop)
            service.start_soon(self.extend_loop)
            try:
                async with anyio.create_task_group() as handlers:
                    await self.receive_loop(handlers)
                await self.wait_settled()
            finally:
                with anyio.CancelScope(shield=True):
                    await self.release_unfinished()
            service.cancel_scope.cancel()

    async def wait_settled(self) -> None:
        """Wait until every claimed message has its outcome recorded."""
        while self.jobs:
            self._freed = asyncio.Event()
            await self._freed.wait()

    async def release_unfinished(self) -> None:
        """Give back at once the messages whose handler did not finish."""
        unfinished = [j.delivery for j in self.jobs if not j.finished]
        if not unfinished:
            return
        try:
            await self.client.release(unfinished)
        except Exception as exc:
            log.warning(
                "releasing %d messages of %r failed (%r): they come back when "
                "their leases expire",
                len(unfinished),
                self.queue,
                exc,
            )

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
            while not self.is_stopping() and not self.gone:
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
        """Recreate a queue (or subscription) deleted under the worker; or stop
        when it is gone for good."""
        if not isinstance(exc, QueueNotFound):
            return False
        try:
            policy = await self.prepare()
        except Exception:
            return False
        if policy is None:
            log.info("queue %r is gone; no longer consuming it", self.queue)
            self.gone = True
        else:
            log.warning("queue %r disappeared; created it again", self.queue)
        return True

    async def _step(self, handlers: TaskGroup) -> None:
        free = self.concurrency - len(self.jobs)
        if free <= 0:
            self._freed = asyncio.Event()
            self._handlers = handlers  # the settle loop refills the slots it frees
            try:
                await self._idle(self._wait_freed)
            finally:
                self._handlers = None
            return
        got = await self.client._claim_for(self.queue, free)
        await self._start(got, handlers)
        if got:
            # The handlers just handed their messages start now, before this
            # task builds its next wait or claim.
            await asyncio.sleep(0)
        if len(got) < free:
            await self._idle(
                partial(self.client.wait_for_messages, self.queue, self.poll)
            )

    async def _start(self, got: list[Delivery], handlers: TaskGroup) -> None:
        """Hand claimed deliveries to handler slots (or give them back: stopping)."""
        if self.is_stopping() or self.gone:
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

    # -- running a handler ---------------------------------------------------------

    async def _serve(self, job: Job | None) -> None:
        """A handler slot: runs its job, then waits to be handed the next one (a
        parked slot costs less to wake than a new task costs to start)."""
        # One scope per slot, not per job: it serves job.cancel() (shutdown) for
        # every job without a timeout, which then ends the slot.
        with anyio.CancelScope() as scope:
            while job is not None:
                await self._process(job, scope)
                if self.is_stopping():
                    return
                slot = Slot()
                self._parked.append(slot)
                await slot.ready.wait()
                job = slot.job

    def _close_slots(self) -> None:
        parked, self._parked = self._parked, []
        for slot in parked:
            slot.ready.set()

    async def _process(self, job: Job, slot_scope: anyio.CancelScope) -> None:
        m = job.delivery.message
        with tracing.consumer_span(m.queue, m.id, m.attempts, m.headers) as span:
            await self._process_in(job, span, slot_scope)

    async def _process_in(
        self, job: Job, span: Any, slot_scope: anyio.CancelScope
    ) -> None:
        outcome = await self._invoke(job, slot_scope)
        if outcome is None:  # cancelled by shutdown: released by the worker
            return
        job.finished = True
        if outcome.kind == "ok":
            self.handled += 1
        else:
            self.failed += 1
        if job.seconds is not None and self.durations is not None:
            self.durations.observe(self.queue, job.seconds)
        if outcome.kind == "ok":  # the settle loop acks it, batched
            tracing.mark_outcome(span, "acked", None)
            self.finished(Done(job))
            return
        failure = failure_of(self.policy, job.delivery, outcome)
        error = outcome.error if isinstance(outcome.error, BaseException) else None
        tracing.mark_outcome(span, settled_event(self.policy, failure), error)
        self.finished(Done(job, outcome.kind, failure))

    def _leave(self, job: Job) -> None:
        self.jobs.discard(job)
        assert self._freed is not None
        self._freed.set()
        self.on_job_left()

    async def _invoke(self, job: Job, slot_scope: anyio.CancelScope) -> Outcome | None:
        try:
            body = decode_body(job.delivery, self.spec.body_type)
        except DecodeError as exc:
            return Outcome("undecodable", exc)
        except Exception as exc:  # e.g. an annotation pydantic cannot validate
            return Outcome("failed", exc)
        timeout = self.spec.timeout
        if timeout is None:
            # job.cancel() cancels the slot's scope: the handler's cancellation
            # ends the slot, and the worker releases the unfinished job.
            job.scope = slot_scope
            if job.cancelled:
                slot_scope.cancel()
            try:
                return await self._run(job, body)
            finally:
                job.scope = None
        # One scope serves both ends: the deadline (timeout) and job.cancel()
        # (shutdown), told apart by job.cancelled.
        with anyio.CancelScope(deadline=anyio.current_time() + timeout) as scope:
            job.scope = scope
            if job.cancelled:
                scope.cancel()
            return await self._run(job, body)
        if job.cancelled or not scope.cancelled_caught:
            return None
        return Outcome(
            "timeout",
            TimeoutError(
                f"handler {self.spec.name} did not finish within {timeout:g} s "
                "(its timeout)"
            ),
        )

    async def _run(self, job: Job, body: Any) -> Outcome:
        """Call the handler; its outcome (cancellation propagates)."""
        started = time.monotonic()
        try:
            await self._call(body)
            return Outcome("ok")
        except Retry as exc:
            return Outcome("retry", exc)
        except AttemptFailed as exc:
            return Outcome(exc.outcome, exc.info)
        except Reject as exc:
            return Outcome("reject", exc)
        except Exception as exc:
            return Outcome("failed", exc)
        finally:
            job.seconds = time.monotonic() - started

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
