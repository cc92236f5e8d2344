"""Translation of redis-py errors into postroom's at the backend boundary."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

import redis.exceptions

from ...model.errors import BackendError

__all__ = ["backend_error", "translated"]


class _Located(Protocol):
    where: str


_P = ParamSpec("_P")
_T = TypeVar("_T")
_B = TypeVar("_B", bound=_Located)


def backend_error(exc: Exception, where: str) -> BackendError:
    """A driver error as a postroom error that says what to do."""
    return BackendError(
        f"Redis at {where} failed: {exc} ({type(exc).__name__}); check "
        "that the server is running and reachable and that the URL is right"
    )


def translated(
    fn: Callable[Concatenate[_B, _P], Coroutine[Any, Any, _T]],
) -> Callable[Concatenate[_B, _P], Coroutine[Any, Any, _T]]:
    """Turn redis-py (and socket) errors into :class:`BackendError`."""

    @functools.wraps(fn)
    async def wrapper(self: _B, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return await fn(self, *args, **kwargs)
        except (redis.exceptions.RedisError, OSError) as exc:
            raise backend_error(exc, self.where) from exc

    return wrapper  # type: ignore[return-value]
