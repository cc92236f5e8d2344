"""Where the backend URL comes from."""

from __future__ import annotations

import os

__all__ = ["DEFAULT_URL", "resolve_url"]

DEFAULT_URL = "sqlite:///postroom.db"


def resolve_url(url: str | None = None) -> str:
    """The URL given, else ``POSTROOM_URL``, else the embedded SQLite default."""
    return url or os.environ.get("POSTROOM_URL") or DEFAULT_URL
