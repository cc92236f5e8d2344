"""The worker runtime: runs an :class:`~postroom.App`'s handlers on one client.

Per handler queue a :class:`~postroom.runtime.runner.QueueRunner` claims at most its
free concurrency slots in one ``receive`` call, long-polls through the backend's
``wait`` when idle, runs handlers (``async def`` in the event loop, ``def`` in
threads), batches acks and extends the leases of running handlers.

Graceful shutdown (SIGTERM/SIGINT, or :meth:`Worker.stop`): stop receiving, let
running handlers finish within the grace period, then release what is still
unfinished at once, without counting an attempt. A second signal skips the grace.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from ..client.core import AsyncClient
from ..model import arguments as check
from ..model.errors import ConfigurationError
from ..model.message import QueuePolicy
from ..model.workers import HEARTBEAT_SECONDS
from .durations import DurationRecorder
from .periodic import start_schedules
from .registry import Heartbeat
from .runner import QueueRunner, describe_policy
from .sampler import Sampler
from .signals import StartupSignals

if TYPE_CHECKING:
    from .app import App, HandlerSpec
    from .push import Pusher

__all__ = ["Worker", "run_worker"]

log = logging.getLogger(__name__)

PARENT_CHECK_SECONDS = 1.0


@contextmanager
def _plain_errors() -> Iterator[None]:
    """Re-raise an exception group holding one error as that error, so callers
    (and the CLI's error handling) see e.g. a ConfigurationError, not a group."""
    try:
        yield
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
            leaf = leaf.exceptions[0]
        if isinstance(leaf, BaseExceptionGroup):
            raise
        raise leaf from None


def select_handlers(
    app: App, queues: Iterable[str] | None, *, allow_none: bool = False
) -> list[HandlerSpec]:
    """The handlers of ``app`` to run: all, or those of the named queues.

    A subscriber can be named by its queue (``topic:name``) or its topic.
    """
    specs = list(app.handlers.values())
    if queues is None:
        wanted: set[str] | None = None
    else:
        wanted = {q.strip() for q in queues if q.strip()}
    if not specs and not allow_none:
        raise ConfigurationError(
            "the app has no handlers: register some with @app.handler(queue) or "
            "@app.subscriber(topic, subscription=...)"
        )
    if wanted is None:
        return specs
    chosen = [s for s in specs if s.queue in wanted or s.topic in wanted]
    known = {s.queue for s in specs} | {s.topic for s in specs if s.topic}
    unknown = sorted(wanted - known)
    if unknown:
        raise ConfigurationError(
            f"no handler for {', '.join(map(repr, unknown))}: the app handles "
            f"{', '.join(sorted(s.queue for s in specs))}"
        )
    return chosen


class Worker:
    """Runs the handlers of ``app`` until stopped.

    ``concurrency`` (when given) replaces every handler's own; ``queues`` limits the
    worker to some handlers; ``grace`` is the shutdown grace period in seconds.
    ``url`` overrides the app's URL; or pass a ``client`` (left open when done).
    With ``push`` the worker also delivers HTTP push subscriptions (see
    :class:`postroom.runtime.push.Pusher`).
    """

    def __init__(
        self,
        app: App,
        *,
        url: str | None = None,
        client: AsyncClient | None = None,
        concurrency: int | None = None,
        grace: float = 30.0,
        queues: Sequence[str] | None = None,
        consumer: str | None = None,
        push: bool = False,
        heartbeat: float = HEARTBEAT_SECONDS,
    ) -> None:
        check.check_worker(concurrency, grace)
        self.app = app
        self.specs = select_handlers(app, queues, allow_none=push)
        self.url = client.url if client is not None else (url or app.url)
        self.concurrency = concurrency
        self.grace = grace
        self._client = client
        self._consumer = consumer
        self.runners: list[QueueRunner] = []
        self.stopping = False
        self._hurry = False
        self._left: anyio.Event | None = None
        self._grace_scope: anyio.CancelScope | None = None
        self.push = push
        self._pusher: Pusher | None = None
        self.durations = DurationRecorder()
        self.heartbeat = Heartbeat(
            queues=[spec.queue for spec in self.specs],
            concurrency=sum(concurrency or s.concurrency for s in self.specs),
            snapshot=self._snapshot,
            interval=heartbeat,
        )
        self.sampler = Sampler()

    # -- control -------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Begin a graceful shutdown; ``now`` skips the grace period.

        Call it from the worker's event loop thread.
        """
        self.stopping = True
        for runner in self.runners:
            runner.wake()
        if self._pusher is not None:
            self._pusher.stop()
        if now:
            self._hurry = True
            self._cancel_jobs()
        if self._left is not None:
            self._left.set()

    def _cancel_jobs(self) -> None:
        for runner in self.runners:
            for job in list(runner.jobs):
                if not job.finished:
                    job.cancel()
        if self._grace_scope is not None:
            self._grace_scope.cancel()

    def _job_left(self) -> None:
        if self._left is not None:
            self._left.set()

    @property
    def running(self) -> int:
        """How many messages are being handled now."""
        return sum(len(r.jobs) for r in self.runners)

    def _snapshot(self) -> tuple[int, int, int]:
        """In flight, handled and failed, for the heartbeat."""
        runners = self.runners
        handled = sum(r.handled for r in runners)
        return self.running, handled, sum(r.failed for r in runners)

    @property
    def abandoned_threads(self) -> int:
        """Sync handler threads left running after a timeout or a shutdown."""
        return sum(r.abandoned_threads for r in self.runners)

    # -- running -------------------------------------------------------------------

    async def run(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Process messages until :meth:`stop`; then shut down gracefully.

        With ``TaskGroup.start`` it reports started once subscriptions exist and
        every queue is being consumed.
        """
        with _plain_errors():
            await self._run(task_status)

    async def _run(self, task_status: TaskStatus[None]) -> None:
        client = self._client or AsyncClient(self.url, consumer=self._consumer)
        try:
            await client.connect()
            await self._prepare(client)
            self._left = anyio.Event()
            async with anyio.create_task_group() as service:
                for runner in self.runners:
                    service.start_soon(runner.settle_loop)
                    service.start_soon(runner.extend_loop)
                service.start_soon(self.durations.run, client)
                service.start_soon(self.heartbeat.run, client)
                service.start_soon(self.sampler.run, client)
                start_schedules(service, client, self.specs)
                async with anyio.create_task_group() as pushing:
                    if self._pusher is not None:
                        pushing.start_soon(self._pusher.run)
                    task_status.started()
                    await self._consume()
                    if self._hurry:
                        pushing.cancel_scope.cancel()
                await self._release_unfinished(client)
                service.cancel_scope.cancel()
            await self.durations.final_flush(client)
            await self.heartbeat.remove(client)
        finally:
            if self._client is None:
                with anyio.CancelScope(shield=True):
                    await client.aclose()

    async def _prepare(self, client: AsyncClient) -> None:
        self.runners = []
        for spec in self.specs:
            prepare = partial(self._prepare_queue, client, spec)
            policy = await prepare()
            concurrency = self.concurrency or spec.concurrency
            log.info("%s", describe_policy(spec, concurrency, policy))
            self.runners.append(
                QueueRunner(
                    spec=spec,
                    client=client,
                    concurrency=concurrency,
                    policy=policy,
                    is_stopping=lambda: self.stopping,
                    on_job_left=self._job_left,
                    prepare=prepare,
                    durations=self.durations,
                )
            )
        if self.push:
            from .push import Pusher

            self._pusher = Pusher(client)
            if self.stopping:
                self._pusher.stop()
        log.info(
            "worker %s started on %s: %d queue(s)%s",
            client.consumer,
            _redact(client.url),
            len(self.runners),
            ", delivering push subscriptions" if self.push else "",
        )

    async def _prepare_queue(
        self, client: AsyncClient, spec: HandlerSpec
    ) -> QueuePolicy:
        """Create the handler's subscription (subscribers) or queue if missing."""
        if spec.topic is not None and spec.subscription is not None:
            opts = self.app.subscription_options(spec.topic, spec.subscription)
            await client.create_subscription(spec.topic, spec.subscription, **opts)
        return await client.ensure_queue(spec.queue)

    async def _consume(self) -> None:
        while not self.runners and not self.stopping:  # a push-only worker
            self._left = anyio.Event()
            await self._left.wait()
        async with anyio.create_task_group() as handlers:
            async with anyio.create_task_group() as receivers:
                for runner in self.runners:
                    receivers.start_soon(runner.receive_loop, handlers)
            # Receiving stopped: give running handlers the grace period.
            if self.running and not self._hurry:
                log.info(
                    "stopping: waiting up to %g s for %d running handler(s)",
                    self.grace,
                    self.running,
                )
                with anyio.move_on_after(self.grace) as self._grace_scope:
                    await self._wait_while(self._handlers_running)
            self._cancel_jobs()
        # Handlers are done or cancelled; let the last batched acks complete.
        await self._wait_while(self._acks_pending)

    def _handlers_running(self) -> bool:
        return any(not j.finished for r in self.runners for j in r.jobs)

    def _acks_pending(self) -> bool:
        return any(j.finished for r in self.runners for j in r.jobs)

    async def _wait_while(self, busy: Callable[[], bool]) -> None:
        while busy():
            self._left = anyio.Event()
            await self._left.wait()

    async def _release_unfinished(self, client: AsyncClient) -> None:
        unfinished = [j.delivery for r in self.runners for j in r.jobs]
        if not unfinished:
            log.info("worker stopped")
            return
        with anyio.CancelScope(shield=True):
            try:
                await client.release(unfinished)
            except Exception:
                log.exception(
                    "releasing %d unfinished messages failed: they come back when "
                    "their leases expire",
                    len(unfinished),
                )
                return
        log.info(
            "worker stopped: released %d unfinished message(s) without counting "
            "an attempt",
            len(unfinished),
        )

    async def serve(
        self,
        *,
        parent_pid: int | None = None,
        startup: StartupSignals | None = None,
    ) -> None:
        """:meth:`run` with SIGTERM/SIGINT handling (main thread only).

        The first signal stops gracefully, a second skips the grace period. With
        ``parent_pid`` the worker also stops when that process goes away. With
        ``startup`` (installed before the slow start), a signal that came
        before this method handles them stops the worker before it runs.
        """
        signals_cm = anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT)
        with _plain_errors(), signals_cm as signals:
            if startup is not None and startup.stopping:
                self.stop()
                log.info("worker stopped before it started")
                return
            async with anyio.create_task_group() as tg:

                async def watch_signals() -> None:
                    async for signum in signals:
                        log.info(
                            "%s: %s",
                            signal.Signals(signum).name,
                            "stopping now" if self.stopping else "shutting down",
                        )
                        self.stop(now=self.stopping)

                tg.start_soon(watch_signals)
                if parent_pid is not None:
                    tg.start_soon(self._watch_parent, parent_pid)
                await self.run()
                tg.cancel_scope.cancel()

    async def _watch_parent(self, parent_pid: int) -> None:
        while os.getppid() == parent_pid:
            await anyio.sleep(PARENT_CHECK_SECONDS)
        log.warning("parent process %d is gone: shutting down", parent_pid)
        self.stop()


def _redact(url: str) -> str:
    """``url`` without a password."""
    head, sep, tail = url.partition("://")
    if "@" not in tail:
        return url
    creds, _, host = tail.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{head}{sep}{user}:***@{host}"


def run_worker(
    app: App,
    *,
    concurrency: int | None = None,
    grace: float = 30.0,
    queues: Sequence[str] | None = None,
    url: str | None = None,
    parent_pid: int | None = None,
    startup: StartupSignals | None = None,
    **options: Any,
) -> Worker:
    """Run ``app``'s handlers until SIGTERM/SIGINT; return the stopped worker.

    Blocks; call it from the main thread. See :class:`Worker` for the options.
    """
    worker = Worker(
        app, url=url, concurrency=concurrency, grace=grace, queues=queues, **options
    )
    anyio.run(partial(worker.serve, parent_pid=parent_pid, startup=startup))
    return worker
