"""``sqlite:///path.db``: the embedded default backend (WAL, multi-process).

See ``docs/backends/sqlite.md`` for what is native, the URL settings and limits.
"""

from __future__ import annotations

from ._backend import SqliteBackend
from ._conn import SqliteSettings

__all__ = ["SqliteBackend", "SqliteSettings"]
