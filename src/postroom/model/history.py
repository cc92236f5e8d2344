"""What an attempt leaves behind: the error it recorded and its history entry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .times import from_ms
from .validate import storable

__all__ = ["ErrorInfo", "HistoryEntry", "format_traceback"]

# Longest error texts kept: the start of a message, the end of a traceback (where
# the failing line is).
_MAX_ERROR_TYPE = 200
_MAX_ERROR_MESSAGE = 8 * 1024
_MAX_TRACEBACK = 32 * 1024


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error recorded on a failed attempt or a dead letter.

    Texts are kept storable and bounded: NUL and lone surrogates become U+FFFD,
    the message is cut after 8 KiB characters and the traceback keeps its last
    32 Ki characters.
    """

    type: str
    message: str
    traceback: str = ""

    def __post_init__(self) -> None:
        kept = (
            storable(str(self.type)[:_MAX_ERROR_TYPE]),
            storable(str(self.message)[:_MAX_ERROR_MESSAGE]),
            storable(str(self.traceback)[-_MAX_TRACEBACK:]),
        )
        if kept != (self.type, self.message, self.traceback):
            for name, value in zip(("type", "message", "traceback"), kept, strict=True):
                object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, str]:
        """JSON-able form."""
        return {"type": self.type, "message": self.message, "traceback": self.traceback}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> ErrorInfo | None:
        """Inverse of :meth:`to_dict`; ``None`` stays ``None``."""
        if not data:
            return None
        return cls(
            type=str(data.get("type", "")),
            message=str(data.get("message", "")),
            traceback=str(data.get("traceback", "")),
        )

    @classmethod
    def from_exception(cls, exc: BaseException) -> ErrorInfo:
        """Capture an exception with its formatted traceback."""
        tb = format_traceback(exc)
        return cls(type=type(exc).__qualname__, message=str(exc), traceback=tb)


def format_traceback(exc: BaseException) -> str:
    """``traceback.format_exception(exc)`` without the ``^^^`` column markers.

    Python 3.11 places them by parsing each frame's source line (``ast.parse``):
    that was a fifth of a worker's time on a queue of failing messages.
    """
    import traceback

    te = traceback.TracebackException(type(exc), exc, exc.__traceback__)
    seen: set[int] = set()
    todo = [te]
    while todo:
        one = todo.pop()
        if id(one) in seen:
            continue
        seen.add(id(one))
        for frame in one.stack:
            frame.colno = frame.end_colno = None
        todo += [e for e in (one.__cause__, one.__context__) if e is not None]
        todo += getattr(one, "exceptions", None) or []
    return "".join(te.format())


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One attempt of a message: when, by whom, how it ended, with which error."""

    at: datetime
    consumer: str
    outcome: str
    error: ErrorInfo | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``at`` in milliseconds since the epoch)."""
        return {
            "at": int(self.at.timestamp() * 1000),
            "consumer": self.consumer,
            "outcome": self.outcome,
            "error": self.error.to_dict() if self.error else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistoryEntry:
        """Inverse of :meth:`to_dict`."""
        return cls(
            at=from_ms(int(data["at"])),
            consumer=str(data.get("consumer", "")),
            outcome=str(data["outcome"]),
            error=ErrorInfo.from_dict(data.get("error")),
        )
