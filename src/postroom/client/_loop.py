"""A private event loop that the threads calling a sync client drive in turn.

The sync :class:`~postroom.Client` runs each call of its :class:`AsyncClient` on
one event loop of its own. The thread that calls runs that loop itself, for the
length of the call: a ``send`` costs the driver's own I/O and no hop to another
thread and back (an ``anyio`` blocking portal's two thread switches cost more than
a Redis round trip).

Several threads may use one client at once. A call that finds the loop driven by
another thread is handed to it (``run_coroutine_threadsafe``) and its caller
waits; when the driving thread's own call ends first, it stops the loop and one
of the waiting callers takes over, so no call waits for another's. A call from a
thread that runs an event loop of its own (sync code called from async code) is
run by a helper thread instead, which drives the loop in the same way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

__all__ = ["SharedLoop"]

P = ParamSpec("P")
T = TypeVar("T")

# Helper threads for calls made from inside a running event loop (rare: created
# on first need, idle ones cost nothing).
_HELPERS = 32


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class SharedLoop:
    """One event loop, run by whichever calling thread needs it (see above)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._cond = threading.Condition()
        self._driving = False
        self._helpers: ThreadPoolExecutor | None = None

    def run(
        self,
        fn: Callable[P, Coroutine[Any, Any, T]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """``await fn(*args, **kwargs)`` on the loop; return its result."""
        if _in_running_loop():
            return self._helper().submit(self.run, fn, *args, **kwargs).result()
        with self._cond:
            drive = not self._driving
            self._driving = True
        if drive:
            try:
                return self.loop.run_until_complete(fn(*args, **kwargs))
            finally:
                self._hand_over()
        return self._join(
            asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), self.loop)
        )

    def _join(self, call: Future[T]) -> T:
        """Wait for a call handed to the driving thread; drive the loop if that
        thread stops before the call is done."""
        call.add_done_callback(self._wake)
        with self._cond:
            while not call.done() and self._driving:
                self._cond.wait()
            if call.done():
                return call.result()
            self._driving = True
        try:
            self.loop.run_until_complete(asyncio.wrap_future(call, loop=self.loop))
        finally:
            self._hand_over()
        return call.result()

    def _wake(self, _: object) -> None:
        with self._cond:
            self._cond.notify_all()

    def _hand_over(self) -> None:
        with self._cond:
            self._driving = False
            self._cond.notify_all()

    def _helper(self) -> ThreadPoolExecutor:
        with self._cond:
            if self._helpers is None:
                self._helpers = ThreadPoolExecutor(
                    _HELPERS, thread_name_prefix="postroom-client"
                )
            return self._helpers

    def close(self) -> None:
        """Close the loop (a call still running in another thread keeps it)."""
        with self._cond:
            helpers, self._helpers = self._helpers, None
            if not self._driving and not self.loop.is_closed():
                self.loop.close()
        if helpers is not None:
            helpers.shutdown(wait=False)
