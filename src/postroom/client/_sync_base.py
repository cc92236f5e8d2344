"""What the sync :class:`~postroom.Client` builds on: its private event loop, the
async client it drives, and closing both."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

from ..backends.base import Backend
from ..model.errors import ConfigurationError
from ._loop import SharedLoop
from .core import AsyncClient

__all__ = ["SyncBase"]

P = ParamSpec("P")
T = TypeVar("T")


def _close_at_exit(loop: SharedLoop, aclient: AsyncClient) -> None:
    try:
        loop.run(aclient.aclose)
    finally:
        loop.close()


class SyncBase:
    """The loop and the :class:`AsyncClient` of a sync client, and closing them."""

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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
