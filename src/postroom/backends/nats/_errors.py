"""nats-py (and socket) errors as postroom's errors."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import nats.errors
import nats.js.errors

from ...model.errors import BackendError, QueueNotFound

__all__ = ["DRIVER_ERRORS", "backend_error", "is_not_found", "translated"]

DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    nats.errors.Error,
    OSError,
    TimeoutError,
)


def backend_error(exc: BaseException, where: str) -> BackendError:
    """One nats-py (or socket) error as a postroom error saying where and what to do."""
    return BackendError(
        f"NATS JetStream at {where} failed: {exc or type(exc).__name__}; check "
        "that nats-server runs with JetStream (-js) and that the URL is right"
    )


@contextlib.asynccontextmanager
async def translated(where: str, queue: str | None = None) -> AsyncIterator[None]:
    """Turn nats-py (and socket) errors into :class:`BackendError` (a missing
    stream or consumer into :class:`QueueNotFound` when ``queue`` is given)."""
    try:
        yield
    except (QueueNotFound, BackendError):
        raise
    except DRIVER_ERRORS as exc:
        if queue is not None and is_not_found(exc):
            raise QueueNotFound(queue) from exc
        raise backend_error(exc, where) from exc


def is_not_found(exc: BaseException) -> bool:
    """Whether a JetStream API error says the stream (or message) does not exist."""
    return isinstance(exc, nats.js.errors.NotFoundError) or (
        isinstance(exc, nats.js.errors.APIError) and exc.code == 404
    )
