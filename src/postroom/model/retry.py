"""Backoff and retry decisions: pure functions, no I/O."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

__all__ = ["Backoff", "seconds", "to_ms"]


def seconds(value: float | timedelta | None) -> float | None:
    """Normalise a public duration (seconds or ``timedelta``) to float seconds."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


def to_ms(value: float | timedelta | None) -> int | None:
    """Normalise a public duration to integer milliseconds."""
    s = seconds(value)
    if s is None:
        return None
    if s < 0:
        raise ValueError(f"a duration cannot be negative (got {s} s)")
    return round(s * 1000)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff between attempts, capped, with optional full jitter.

    The delay before retry number ``n`` (after the ``n``-th failed attempt) is
    ``initial * factor ** (n - 1)``, capped at ``max``. With ``jitter`` the delay is
    drawn uniformly between half of that and all of it, so that failures that happen
    together do not retry together.
    """

    initial: float = 1.0
    factor: float = 2.0
    max: float = 300.0
    jitter: bool = True

    def __post_init__(self) -> None:
        from . import validate

        days = validate.MAX_DELAY_SECONDS
        validate.seconds(self.initial, "Backoff initial", 0.0, days, "14 days")
        validate.seconds(self.max, "Backoff max", 0.0, days, "14 days")
        validate.factor(self.factor, "Backoff factor")
        validate.flag(self.jitter, "Backoff jitter")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        n = max(attempt, 1)
        try:
            base = self.initial * self.factor ** (n - 1)
        except OverflowError:
            base = self.max
        base = min(base, self.max)
        if self.jitter and base > 0:
            r = rng or random
            return r.uniform(base / 2, base)
        return base

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, as stored in backends."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Backoff:
        """Inverse of :meth:`to_dict`."""
        return cls(
            initial=float(data["initial"]),
            factor=float(data["factor"]),
            max=float(data["max"]),
            jitter=bool(data["jitter"]),
        )
