"""How the dashboard writes values: one timestamp format on every page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

__all__ = ["when"]


def when(value: Any) -> str:
    """One timestamp format on every page: UTC with milliseconds."""
    if isinstance(value, datetime):
        stamp = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return stamp[:-3] + "Z"
    return str(value)
