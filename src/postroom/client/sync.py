"""``Client``: the sync API, a thin facade over :class:`AsyncClient`.

Every method is one call of the async client's method on the client's private
event loop, run by the calling thread (see ``_loop.py``), so the logic exists
once, in the async client.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, TypeVar, overload

from ..backends.base import Backend
from ..model.errors import ConfigurationError
from ..model.message import QueueStats
from ._loop import SharedLoop
from .core import AsyncClient

__all__ = ["Client"]

P = ParamSpec("P")
T = TypeVar("T")


def _close_at_exit(loop: SharedLoop, aclient: AsyncClient) -> None:
    try:
        loop.run(aclient.aclose)
    finally:
        loop.close()


def _blocking(
    method: Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[Client, P], T]:
    """The method of :class:`Client` that runs the :class:`AsyncClient` method
    ``method`` to completion on the client's event loop: same parameters, same
    docstring, returning what the coroutine returns."""

    def call(client: Client, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return client._call(method, client.aclient, *args, **kwargs)

    functools.update_wrapper(call, method)  # name, docstring, signature
    call.__module__, call.__qualname__ = __name__, f"Client.{call.__name__}"
    return call


def _sent_directly(
    method: Callable[Concatenate[AsyncClient, str, Any, P], Coroutine[Any, Any, str]],
) -> Callable[Concatenate[Client, str, Any, P], str]:
    """:func:`_blocking` for ``send``: stored from the caller's thread where the
    backend can (``AsyncClient._send_blocking``), through the loop otherwise."""

    def call(
        client: Client, queue: str, body: Any, /, *args: P.args, **kwargs: P.kwargs
    ) -> str:
        mid = client.aclient._send_blocking(queue, body, *args, **kwargs)
        if mid is not None:
            return mid
        return client._call(method, client.aclient, queue, body, *args, **kwargs)

    functools.update_wrapper(call, method)  # name, docstring, signature
    call.__module__, call.__qualname__ = __name__, f"Client.{call.__name__}"
    return call


class Client:
    """The sync client; ``postroom.connect()`` builds one.

    Use it as a context manager, or call :meth:`close` when done. Its methods are
    those of :class:`AsyncClient`, blocking.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        backend: Backend | None = None,
        consumer: str | None = None,
    ) -> None:
        self._loop: SharedLoop | None = SharedLoop()
        try:
            self.aclient = AsyncClient(url, backend=backend, consumer=consumer)
            self._loop.run(self.aclient.connect)
        except BaseException:
            self._loop.close()
            raise
        self.url = self.aclient.url
        # A client that is never closed is closed at interpreter exit.
        self._finalizer = weakref.finalize(
            self, _close_at_exit, self._loop, self.aclient
        )

    @property
    def consumer(self) -> str:
        """This client's consumer id, as recorded in attempt histories."""
        return self.aclient.consumer

    def close(self) -> None:
        """Close the backend's connections and the client's event loop."""
        if self._loop is not None:
            self._loop = None
            self._finalizer()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(
        self,
        fn: Callable[P, Coroutine[Any, Any, T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        loop = self._loop
        if loop is None:
            raise ConfigurationError(
                "this client is closed: create a new one with postroom.connect()"
            )
        return loop.run(fn, *args, **kwargs)

    # -- queues --------------------------------------------------------------------

    declare_queue = _blocking(AsyncClient.declare_queue)
    queue_policy = _blocking(AsyncClient.queue_policy)
    queues = _blocking(AsyncClient.queues)
    delete_queue = _blocking(AsyncClient.delete_queue)

    # -- sending -------------------------------------------------------------------

    send = _sent_directly(AsyncClient.send)
    send_many = _blocking(AsyncClient.send_many)

    # -- receiving -----------------------------------------------------------------

    receive = _blocking(AsyncClient.receive)
    ack = _blocking(AsyncClient.ack)
    ack_many = _blocking(AsyncClient.ack_many)
    settle = _blocking(AsyncClient.settle)
    ack_and_receive = _blocking(AsyncClient.ack_and_receive)
    retry = _blocking(AsyncClient.retry)
    fail = _blocking(AsyncClient.fail)
    reject = _blocking(AsyncClient.reject)
    extend = _blocking(AsyncClient.extend)
    release = _blocking(AsyncClient.release)

    # -- inspection ----------------------------------------------------------------

    @overload
    def stats(self, queue: None = None) -> dict[str, QueueStats]: ...
    @overload
    def stats(self, queue: str) -> QueueStats: ...

    def stats(self, queue: str | None = None) -> dict[str, QueueStats] | QueueStats:
        """Depths of one queue, or of every queue as a dict by name."""
        if queue is None:
            return self._call(self.aclient.stats)
        return self._call(self.aclient.stats, queue)

    peek = _blocking(AsyncClient.peek)
    dead_letters = _blocking(AsyncClient.dead_letters)
    dead_letter = _blocking(AsyncClient.dead_letter)
    redrive = _blocking(AsyncClient.redrive)
    purge = _blocking(AsyncClient.purge)

    # -- topics --------------------------------------------------------------------

    publish = _blocking(AsyncClient.publish)
    create_subscription = _blocking(AsyncClient.create_subscription)
    subscriptions = _blocking(AsyncClient.subscriptions)
    subscription = _blocking(AsyncClient.subscription)
    delete_subscription = _blocking(AsyncClient.delete_subscription)
    topics = _blocking(AsyncClient.topics)

    # -- what the worker, server and tools read ------------------------------------

    ensure_queue = _blocking(AsyncClient.ensure_queue)
    prepare_send = _blocking(AsyncClient.prepare_send)
    wait_for_messages = _blocking(AsyncClient.wait_for_messages)

    def rate_limit_wait(self, queue: str) -> float:
        """Seconds until the rate limit of ``queue`` grants a delivery, as this
        client's last receive of it found (``0.0``: it held nothing back)."""
        return self.aclient.rate_limit_wait(queue)

    queue_stats = _blocking(AsyncClient.queue_stats)
    counters = _blocking(AsyncClient.counters)
    durations = _blocking(AsyncClient.durations)
    record_durations = _blocking(AsyncClient.record_durations)
    workers = _blocking(AsyncClient.workers)
    put_worker = _blocking(AsyncClient.put_worker)
    delete_worker = _blocking(AsyncClient.delete_worker)
    take_sample = _blocking(AsyncClient.take_sample)
    samples = _blocking(AsyncClient.samples)
