"""The client's own state: its backend, connection and cached queue policies.

:class:`ClientBase` is the only place that holds a :class:`Backend`; the method
groups of :class:`~postroom.client.core.AsyncClient` reach it through
:meth:`ClientBase._b`.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from types import TracebackType

import anyio

from ..backends.base import Backend, Capabilities, open_backend
from ..model import validate
from ..model.arguments import queue_name
from ..model.errors import QueueNotFound
from ..model.message import ErrorInfo, QueuePolicy
from ..model.names import dead_letter_queue_name
from .config import resolve_url

__all__ = ["ClientBase", "default_consumer_id", "error_info"]

_POLICY_TTL = 2.0


def default_consumer_id() -> str:
    """``host:pid:random``, naming this consumer in attempt histories."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def error_info(error: BaseException | ErrorInfo | str | None) -> ErrorInfo | None:
    """An attempt's error as recorded in its history entry."""
    if error is None or isinstance(error, ErrorInfo):
        return error
    if isinstance(error, BaseException):
        return ErrorInfo.from_exception(error)
    return ErrorInfo(type="Error", message=str(error))


class ClientBase:
    """Connection, lifecycle and queue policies of an :class:`AsyncClient`."""

    def __init__(
        self,
        url: str | None = None,
        *,
        backend: Backend | None = None,
        consumer: str | None = None,
    ) -> None:
        self.url = backend.url if backend is not None else resolve_url(url)
        self.backend = backend if backend is not None else open_backend(self.url)
        self.consumer = consumer or default_consumer_id()
        self._connected = False
        self._connect_lock: anyio.Lock | None = None
        self._policies: dict[str, tuple[QueuePolicy, float]] = {}
        # The backend cannot store from a thread without the loop (see
        # AsyncClient._send_blocking).
        self._no_blocking_send = False

    @property
    def capabilities(self) -> Capabilities:
        """What the backend does natively (see :class:`postroom.Capabilities`)."""
        return self.backend.capabilities

    def rate_limit_wait(self, queue: str) -> float:
        """Seconds until the rate limit of ``queue`` grants a delivery, as this
        client's last receive of it found (``0.0``: it held nothing back)."""
        return self.backend.rate_limit_wait(queue)

    # -- lifecycle -----------------------------------------------------------------

    async def _open(self) -> None:
        if self._connected:
            return
        if self._connect_lock is None:
            self._connect_lock = anyio.Lock()
        async with self._connect_lock:
            if not self._connected:
                await self.backend.connect()
                self._connected = True

    async def aclose(self) -> None:
        """Close the backend's connections."""
        if self._connected:
            self._connected = False
            await self.backend.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _b(self) -> Backend:
        if not self._connected:
            await self._open()
        return self.backend

    # -- policies ------------------------------------------------------------------

    def _cached_policy(self, queue: str) -> QueuePolicy | None:
        cached = self._policies.get(queue)
        if cached and time.monotonic() - cached[1] < _POLICY_TTL:
            return cached[0]
        return None

    def _remember(self, queue: str, policy: QueuePolicy) -> QueuePolicy:
        self._policies[queue] = (policy, time.monotonic())
        return policy

    async def queue_policy(self, queue: str) -> QueuePolicy:
        """The stored policy of ``queue``; raises :class:`QueueNotFound`."""
        queue_name(queue)
        cached = self._cached_policy(queue)
        if cached is not None:
            return cached
        policy = await (await self._b()).get_policy(queue)
        if policy is None:
            self._policies.pop(queue, None)
            raise QueueNotFound(queue)
        return self._remember(queue, policy)

    async def ensure_queue(self, queue: str) -> QueuePolicy:
        """The policy of ``queue``, creating the queue with the default policy
        when it does not exist (as :meth:`send` does)."""
        cached = self._cached_policy(queue)
        if cached is not None:
            return cached
        validate.name(queue)
        policy = QueuePolicy(dead_letter=dead_letter_queue_name(queue))
        stored = await (await self._b()).declare_queue(queue, policy, replace=False)
        return self._remember(queue, stored)
