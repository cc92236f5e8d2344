"""Wall-clock milliseconds, the time unit every backend stores."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["from_ms", "now_ms", "to_ms_dt"]


def now_ms() -> int:
    """Wall-clock time in integer milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def from_ms(ms: int) -> datetime:
    """Milliseconds since the epoch to an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def to_ms_dt(dt: datetime) -> int:
    """Aware datetime to milliseconds since the epoch."""
    return int(dt.timestamp() * 1000)
