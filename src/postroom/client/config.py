"""Where the backend URL comes from."""

from __future__ import annotations

import os

from ..model.errors import InvalidArgument

__all__ = ["DEFAULT_URL", "resolve_url"]

DEFAULT_URL = "sqlite:///postroom.db"


def resolve_url(url: str | None = None) -> str:
    """The URL given, else ``POSTROOM_URL``, else the embedded SQLite default."""
    if url is not None and not isinstance(url, str):
        raise InvalidArgument(
            f"url must be a string, got a {type(url).__name__}: e.g. "
            f"'{DEFAULT_URL}' or 'redis://localhost:6379/0'"
        )
    return url or os.environ.get("POSTROOM_URL") or DEFAULT_URL
