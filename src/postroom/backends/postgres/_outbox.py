"""Sending inside the application's own transaction: the outbox pattern.

A service that writes its own rows and sends a message about them wants both or
neither. :func:`send_in_transaction` stores the message through the caller's
connection, in the caller's transaction: a rollback takes it back with the
caller's writes, and consumers see it (and are woken by its ``NOTIFY``) only once
that transaction commits.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import psycopg

from ...model.errors import NotSupported
from . import _send
from ._backend import PostgresBackend
from ._conn import backend_error

if TYPE_CHECKING:
    from ...client.core import AsyncClient

__all__ = ["send_in_transaction"]


async def send_in_transaction(
    client: AsyncClient,
    conn: psycopg.AsyncConnection[Any],
    queue: str,
    body: Any,
    *,
    delay: float | timedelta | None = None,
    headers: Mapping[str, str] | None = None,
    dedup_key: str | None = None,
) -> str:
    """Put a message on ``queue`` as part of the transaction open on ``conn``.

    ``client`` is a connected ``postgresql://`` client and ``conn`` a psycopg
    connection to the same database. The message is stored (in a savepoint) but
    exists for consumers only when the caller's transaction commits; a rollback
    removes it. Returns the message id. The queue itself is created, when needed,
    at once and outside that transaction (as ``send`` does).
    """
    backend = client.backend
    if not isinstance(backend, PostgresBackend):
        raise NotSupported(
            f"send_in_transaction needs a postgresql:// client, not {client.url!r}: "
            "use client.send() on other backends"
        )
    msg, window = await client._prepare_one(queue, body, delay, headers, dedup_key)
    try:
        async with conn.transaction():  # a savepoint inside the caller's transaction
            if dedup_key is None:
                await _send.insert(conn, backend.sql, queue, [msg])
                return msg.id
            [mid] = await _send.enqueue_dedup(
                conn, backend.sql, queue, [msg], window, backend.pruned
            )
            return mid
    except psycopg.Error as exc:
        raise backend_error(exc, backend.settings.where) from exc
