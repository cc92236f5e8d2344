"""Translation of aio-pika / aiormq errors into postroom's at the backend boundary."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import aio_pika.exceptions
import aiormq.exceptions

from ...model.errors import BackendError

__all__ = ["DRIVER_ERRORS", "backend_error", "translated"]

DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,  # a RuntimeError: used while closed
    aio_pika.exceptions.AMQPException,
    ConnectionError,
    OSError,
    asyncio.TimeoutError,
)


class _Located(Protocol):
    where: str


_P = ParamSpec("_P")
_T = TypeVar("_T")
_B = TypeVar("_B", bound=_Located)


def backend_error(exc: BaseException, where: str) -> BackendError:
    """A driver error as a postroom error that says what to do."""
    return BackendError(
        f"RabbitMQ at {where} failed: {exc} ({type(exc).__name__}); check that "
        "the broker is running and reachable and that the URL is right (the "
        "backend reconnects on its own)"
    )


def _forget(call: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a call whose caller was cancelled (nobody waits)."""
    if not call.cancelled():
        call.exception()


def translated(
    fn: Callable[Concatenate[_B, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[_B, _P], Coroutine[Any, Any, _T]]:
    """Turn aio-pika, aiormq and socket errors into :class:`BackendError`, and
    shield the call from cancellation: aiormq closes a channel whose RPC is
    cancelled midway, which would end every lease the channel holds. A
    cancelled caller stops waiting at once; the call itself completes."""

    @functools.wraps(fn)
    async def wrapper(self: _B, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        call = asyncio.ensure_future(fn(self, *args, **kwargs))
        try:
            return await asyncio.shield(call)
        except asyncio.CancelledError:
            call.add_done_callback(_forget)
            raise
        except DRIVER_ERRORS as exc:
            raise backend_error(exc, self.where) from exc
        except RuntimeError as exc:
            # aio-pika raises a bare RuntimeError for a connection it is
            # reopening ("<Connection ...> closed").
            if "closed" not in str(exc):
                raise
            raise backend_error(exc, self.where) from exc

    return wrapper  # type: ignore[return-value]
