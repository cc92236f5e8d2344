"""What a read of dead letters asks for, and the matching every backend shares."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .message import DeadLetter

__all__ = ["DeadLetterQuery"]


@dataclass(frozen=True, slots=True)
class DeadLetterQuery:
    """Which dead letters of a queue to read: at most ``limit``, oldest death
    first, only those with ``reason``, whose last error has ``error_contains`` in
    its message or type (case-insensitive), and, with ``ids``, only those ids (in
    that order)."""

    limit: int
    reason: str | None = None
    error_contains: str | None = None
    ids: Sequence[str] | None = None

    def matches(self, dl: DeadLetter) -> bool:
        """Whether ``dl`` passes the reason and error filters (``ids`` and
        ``limit`` are the caller's: they decide what is read)."""
        if self.reason is not None and dl.reason != self.reason:
            return False
        if self.error_contains is None:
            return True
        err = dl.error
        if err is None:
            return False
        needle = self.error_contains.lower()
        return needle in err.message.lower() or needle in err.type.lower()

    def select(self, letters: Iterable[DeadLetter]) -> list[DeadLetter]:
        """The first ``limit`` of ``letters`` that match (read in order)."""
        out: list[DeadLetter] = []
        for dl in letters:
            if len(out) >= self.limit:
                break
            if self.matches(dl):
                out.append(dl)
        return out
