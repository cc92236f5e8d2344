"""postroom: asynchronous messaging for Python microservices.

Work queues (pull) and topics (push) with one delivery contract on every backend:
embedded SQLite by default, ``memory://`` for tests, Redis and more by URL.
"""

from __future__ import annotations

from .backends.base import Backend, Capabilities, TopicInfo, open_backend
from .client.core import AsyncClient
from .client.sync import Client
from .model.errors import (
    BackendError,
    ConfigurationError,
    DeadLetterNotFound,
    DecodeError,
    HandlerSignal,
    InvalidArgument,
    LeaseLost,
    MissingDependency,
    NotSupported,
    PostroomError,
    QueueNotFound,
    Reject,
    Retry,
    SerializationError,
    SubscriptionNotFound,
)
from .model.message import (
    DeadLetter,
    Delivery,
    ErrorInfo,
    HistoryEntry,
    Message,
    QueuePolicy,
    QueueStats,
    Subscription,
)
from .model.retry import Backoff
from .model.settlement import Failure, Settled
from .model.signing import verify_signature
from .runtime.app import App
from .runtime.worker import Worker, run_worker

__version__ = "0.1.0"

__all__ = [
    "App",
    "AsyncClient",
    "Backend",
    "BackendError",
    "Backoff",
    "Capabilities",
    "Client",
    "ConfigurationError",
    "DeadLetter",
    "DeadLetterNotFound",
    "DecodeError",
    "Delivery",
    "ErrorInfo",
    "Failure",
    "HandlerSignal",
    "HistoryEntry",
    "InvalidArgument",
    "LeaseLost",
    "Message",
    "MissingDependency",
    "NotSupported",
    "PostroomError",
    "QueueNotFound",
    "QueuePolicy",
    "QueueStats",
    "Reject",
    "Retry",
    "SerializationError",
    "Settled",
    "Subscription",
    "SubscriptionNotFound",
    "TopicInfo",
    "Worker",
    "__version__",
    "connect",
    "connect_async",
    "open_backend",
    "run_worker",
    "verify_signature",
]


def connect(url: str | None = None) -> Client:
    """A connected sync :class:`Client` for ``url`` (else ``POSTROOM_URL``, else
    ``sqlite:///postroom.db``)."""
    return Client(url)


def connect_async(url: str | None = None) -> AsyncClient:
    """An :class:`AsyncClient` for ``url``; use ``async with`` or call
    ``aclose()``. It connects on first use."""
    return AsyncClient(url)
