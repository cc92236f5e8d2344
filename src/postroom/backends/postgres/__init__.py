"""``postgresql://user@host/db``: PostgreSQL (>= 13) backend, multi-host.

See ``docs/backends/postgres.md`` for what is native, the URL settings and limits.
"""

from __future__ import annotations

from ._backend import PostgresBackend
from ._conn import PostgresSettings
from ._outbox import send_in_transaction

__all__ = ["PostgresBackend", "PostgresSettings", "send_in_transaction"]
