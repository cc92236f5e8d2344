"""Sending inside the application's own transaction: the outbox pattern.

A service that writes its own rows and sends a message about them wants both or
neither. :func:`send_in_transaction` stores the message through the caller's
connection, in the caller's transaction: a rollback takes it back with the
caller's writes, and consumers see it (and are woken by its ``NOTIFY``) only once
that transaction commits.

The client prepares the message (:meth:`AsyncClient.prepare_send
<postroom.AsyncClient.prepare_send>`); the backend stores it through
``Backend.enqueue_in_transaction``, which backends declaring
``capabilities.transactional_send`` implement.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

import psycopg

from ...model.codec import PreparedSend
from ...model.errors import NotSupported
from ...model.message import Message
from ..base import Backend, Capabilities
from . import _send
from ._conn import backend_error

if TYPE_CHECKING:
    from ._backend import PostgresBackend

__all__ = ["TransactionalClient", "enqueue_in", "send_in_transaction"]


class TransactionalClient(Protocol):
    """What :func:`send_in_transaction` needs of an ``AsyncClient``."""

    @property
    def url(self) -> str:
        """The client's backend URL."""

    @property
    def backend(self) -> Backend:
        """The client's backend."""

    @property
    def capabilities(self) -> Capabilities:
        """What the client's backend does natively."""

    @property
    def prepare_send(self) -> Callable[..., Awaitable[PreparedSend]]:
        """``AsyncClient.prepare_send``: one send's message, its queue created."""


async def send_in_transaction(
    client: TransactionalClient,
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
    if not client.capabilities.transactional_send:
        raise NotSupported(
            f"send_in_transaction needs a postgresql:// client, not {client.url!r}: "
            "use client.send() on other backends"
        )
    ready = await client.prepare_send(
        queue, body, delay=delay, headers=headers, dedup_key=dedup_key
    )
    [mid] = await client.backend.enqueue_in_transaction(
        conn, queue, [ready.message], dedup_window_ms=ready.dedup_window_ms
    )
    return mid


async def enqueue_in(
    backend: PostgresBackend,
    conn: psycopg.AsyncConnection[Any],
    queue: str,
    messages: Sequence[Message],
    dedup_window_ms: int,
) -> list[str]:
    """``PostgresBackend.enqueue_in_transaction``: the messages stored through
    ``conn``, in a savepoint of the transaction open on it."""
    try:
        async with conn.transaction():  # a savepoint inside the caller's transaction
            if all(m.dedup_key is None for m in messages):
                await _send.insert(conn, backend.sql, queue, messages)
                return [m.id for m in messages]
            return await _send.enqueue_dedup(
                conn, backend.sql, queue, messages, dedup_window_ms, backend.pruned
            )
    except psycopg.Error as exc:
        raise backend_error(exc, backend.settings.where) from exc
