"""The state of ``memory://`` backends: one store per URL, shared in the process."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..model.message import DeadLetter, HistoryEntry, Message, QueuePolicy, Subscription
from ..model.order import Bucket
from ..model.stats import COUNTERS

__all__ = ["QueueState", "Record", "Store", "store_for"]


@dataclass(slots=True)
class Record:
    """One stored message and its lease."""

    message: Message
    available_ms: int
    token: str | None = None
    lease_ms: int = 0
    consumer: str = ""
    history: list[HistoryEntry] = field(default_factory=list)


@dataclass(slots=True)
class QueueState:
    """One queue: policy, messages, dead letters, dedup keys, counters."""

    policy: QueuePolicy
    messages: dict[str, Record] = field(default_factory=dict)
    dead: dict[str, DeadLetter] = field(default_factory=dict)
    dedup: dict[str, tuple[str, int]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    bucket: Bucket | None = None  # the rate limit's permits
    ordered: bool = False  # a grouped or prioritised message was stored


@dataclass(slots=True)
class Store:
    """Everything of one ``memory://`` URL, behind one lock."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    queues: dict[str, QueueState] = field(default_factory=dict)
    subscriptions: dict[tuple[str, str], Subscription] = field(default_factory=dict)
    topics: dict[str, list[int]] = field(default_factory=dict)
    durations: dict[str, dict[str, int]] = field(default_factory=dict)
    workers: dict[str, tuple[str, int]] = field(default_factory=dict)
    samples: dict[int, tuple[str, int]] = field(default_factory=dict)
    waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = field(
        default_factory=set
    )


_STORES: dict[str, Store] = {}
_STORES_LOCK = threading.Lock()


def store_for(url: str) -> Store:
    """The store of ``url`` (host and path name it), created on first use."""
    parts = urlsplit(url)
    key = parts.netloc + parts.path
    with _STORES_LOCK:
        return _STORES.setdefault(key, Store())
