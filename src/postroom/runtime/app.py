"""``App``: the registry of handlers and subscribers that a worker runs."""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

from ..client.config import resolve_url
from ..model import arguments as check
from ..model.errors import ConfigurationError, InvalidArgument
from ..model.names import subscription_queue_name
from ..model.retry import seconds
from ..model.schedule import Schedule, make_schedule
from .periodic import periodic_queue, tick_handler
from .typed import Handler

if TYPE_CHECKING:
    from ..client.core import AsyncClient
    from ..client.sync import Client

__all__ = [
    "ASYNC_CONCURRENCY",
    "THREAD_CONCURRENCY",
    "App",
    "HandlerSpec",
    "default_concurrency",
]

F = TypeVar("F", bound=Callable[..., Any])
B = TypeVar("B")
R = TypeVar("R")

# Messages an ``async def`` handler takes at once when no ``concurrency`` is given:
# enough to keep one event loop busy with I/O-bound jobs (docs/workers.md has the
# measurements), and few enough that a killed worker strands few leases.
ASYNC_CONCURRENCY = 100


# Threads a ``def`` handler gets when no ``concurrency`` is given. Such handlers
# mostly wait on blocking I/O (HTTP calls, queries), which threads overlap: on the
# project's 2 cores, 32 threads drained such jobs 2.5 times as fast as 6 (Python's
# ThreadPoolExecutor size there). CPU-bound work gains from processes, not threads.
THREAD_CONCURRENCY = 32


def default_concurrency(is_async: bool) -> int:
    """The concurrency of a handler registered without one."""
    return ASYNC_CONCURRENCY if is_async else THREAD_CONCURRENCY


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """One registered handler: what it consumes and how."""

    queue: str
    func: Callable[..., Any]
    concurrency: int
    timeout: float | None
    is_async: bool
    body_type: Any
    topic: str | None = None
    subscription: str | None = None
    schedule: Schedule | None = None

    @property
    def name(self) -> str:
        """``module.qualname`` of the handler function."""
        return f"{self.func.__module__}.{self.func.__qualname__}"


def _body_type(func: Callable[..., Any]) -> Any:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError) as exc:  # e.g. a builtin class
        raise InvalidArgument(
            f"handler {func!r} has no readable signature ({exc}): use a def or "
            "async def function taking the message body"
        ) from exc
    if len(params) != 1:
        raise ConfigurationError(
            f"handler {func.__qualname__} must take exactly one parameter (the "
            f"message body), it takes {len(params)}"
        )
    try:
        hints = get_type_hints(func)
    except Exception:  # another annotation (e.g. the return type) does not resolve
        hints = _parameter_hint(func, params[0])
    annotation = hints.get(params[0].name, params[0].annotation)
    return None if annotation is inspect.Parameter.empty else annotation


def _parameter_hint(func: Callable[..., Any], param: inspect.Parameter) -> Any:
    """The body parameter's annotation resolved alone; a name that resolves to
    nothing is refused here rather than failing every delivery later."""
    if not isinstance(param.annotation, str):
        return {}

    def probe() -> None: ...

    probe.__annotations__ = {param.name: param.annotation}
    try:
        return get_type_hints(probe, getattr(func, "__globals__", None))
    except Exception as exc:
        raise InvalidArgument(
            f"the body type {param.annotation!r} of handler {func.__qualname__} "
            f"cannot be resolved ({exc}): define or import it before the handler"
        ) from exc


def _concurrency(given: int | None, func: Callable[..., Any]) -> int:
    if given is None:
        return default_concurrency(inspect.iscoroutinefunction(func))
    return given


class App:
    """A set of handlers and subscribers, run by ``postroom worker MODULE:APP``.

    ``url`` chooses the backend as for :func:`postroom.connect`.
    """

    def __init__(self, url: str | None = None) -> None:
        self.url = resolve_url(url)
        self.handlers: dict[str, HandlerSpec] = {}
        self._subscription_options: dict[tuple[str, str], dict[str, Any]] = {}
        self._client: Client | None = None
        self._async_client: AsyncClient | None = None
        self._client_lock = threading.Lock()

    def client(self) -> Client:
        """The sync client for the App's URL that typed sends use (created on
        first use, then reused; :meth:`close` closes it)."""
        with self._client_lock:
            if self._client is None:
                from ..client.sync import Client

                self._client = Client(self.url)
            return self._client

    def async_client(self) -> AsyncClient:
        """The :class:`~postroom.AsyncClient` that ``send_async`` uses (created on
        first use, then reused; use it from one event loop)."""
        with self._client_lock:
            if self._async_client is None:
                from ..client.core import AsyncClient

                self._async_client = AsyncClient(self.url)
            return self._async_client

    def close(self) -> None:
        """Close the sync client of typed sends, if one was created."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close both clients of typed sends, if created."""
        self.close()
        with self._client_lock:
            aclient, self._async_client = self._async_client, None
        if aclient is not None:
            await aclient.aclose()

    def _register(self, spec: HandlerSpec) -> None:
        if spec.queue in self.handlers:
            raise ConfigurationError(
                f"queue {spec.queue!r} already has a handler "
                f"({self.handlers[spec.queue].name}): one handler per queue"
            )
        if spec.concurrency < 1:
            raise ConfigurationError("concurrency must be >= 1")
        self.handlers[spec.queue] = spec

    def _add_handler(
        self,
        func: Callable[[B], R],
        queue: str,
        concurrency: int | None,
        timeout: float | timedelta | None,
        topic: str | None = None,
        subscription: str | None = None,
    ) -> Handler[B, R]:
        """Register ``func`` as the handler of ``queue``; its typed :class:`Handler`."""
        if not callable(func):
            raise InvalidArgument(
                f"a handler must be a function (def or async def), got a "
                f"{type(func).__name__}: decorate it with @app.handler({queue!r})"
            )
        body_type = _body_type(func)
        self._register(
            HandlerSpec(
                queue=queue,
                func=func,
                concurrency=_concurrency(concurrency, func),
                timeout=seconds(timeout),
                is_async=inspect.iscoroutinefunction(func),
                body_type=body_type,
                topic=topic,
                subscription=subscription,
            )
        )
        return Handler(func, self, queue, body_type, topic)

    def handler(
        self,
        queue: str,
        *,
        concurrency: int | None = None,
        timeout: float | timedelta | None = None,
    ) -> Callable[[Callable[[B], R]], Handler[B, R]]:
        """Register a function (``def`` or ``async def``) to process ``queue``.

        The body is decoded into the annotated parameter type. Returning acks;
        raising :class:`~postroom.Retry` or :class:`~postroom.Reject` chooses the
        outcome; any other exception is a failed attempt. ``concurrency`` is how
        many messages it handles at once per worker process (default: 100 for an
        ``async def``, 32 threads for a ``def``; 1 runs one at
        a time).

        It returns a :class:`~postroom.runtime.typed.Handler`: the function, plus
        ``send``/``send_async`` that check a body against its parameter type.
        """
        check.check_handler(queue, 1 if concurrency is None else concurrency, timeout)

        def decorate(func: Callable[[B], R]) -> Handler[B, R]:
            return self._add_handler(func, queue, concurrency, timeout)

        return decorate

    def subscriber(
        self,
        topic: str,
        *,
        subscription: str,
        concurrency: int | None = None,
        timeout: float | timedelta | None = None,
        filter: dict[str, str] | None = None,
        max_attempts: int = 5,
    ) -> Callable[[Callable[[B], R]], Handler[B, R]]:
        """Register a function to receive every event of ``topic`` through the
        durable subscription ``subscription`` (created when the worker starts).

        ``concurrency`` defaults as for :meth:`handler`; the returned
        :class:`~postroom.runtime.typed.Handler`'s ``send`` publishes to ``topic``."""
        check.check_handler(
            topic, 1 if concurrency is None else concurrency, timeout, "topic"
        )
        check.check_subscription(
            topic, subscription, None, None, filter, max_attempts, 30.0, None
        )
        self._subscription_options[(topic, subscription)] = {
            "filter": filter,
            "max_attempts": max_attempts,
        }

        def decorate(func: Callable[[B], R]) -> Handler[B, R]:
            queue = subscription_queue_name(topic, subscription)
            return self._add_handler(
                func, queue, concurrency, timeout, topic, subscription
            )

        return decorate

    def periodic(
        self,
        name: str,
        *,
        every: float | timedelta | None = None,
        cron: str | None = None,
        tz: str | None = None,
        timeout: float | timedelta | None = None,
    ) -> Callable[[F], F]:
        """Run a function (no argument, or the scheduled time as a ``datetime``)
        once per tick across all worker processes (docs/scheduling.md).

        Give ``every`` (seconds or a timedelta, ticks aligned to the Unix epoch)
        or ``cron`` (5 fields, evaluated in the IANA zone ``tz``, UTC by default).
        Its ticks are messages on the queue ``postroom.periodic.<name>``.
        """
        queue = periodic_queue(name)
        schedule = make_schedule(every, cron, tz)
        check.check_handler(queue, 1, timeout, "name")

        def decorate(func: F) -> F:
            wrapper = tick_handler(func)
            self._register(
                HandlerSpec(
                    queue=queue,
                    func=wrapper,
                    concurrency=1,
                    timeout=seconds(timeout),
                    is_async=inspect.iscoroutinefunction(wrapper),
                    body_type=datetime,
                    schedule=schedule,
                )
            )
            return func

        return decorate

    def subscription_options(self, topic: str, name: str) -> dict[str, Any]:
        """The options given to :meth:`subscriber` for one subscription."""
        return dict(self._subscription_options.get((topic, name), {}))
