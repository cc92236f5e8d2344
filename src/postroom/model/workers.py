"""Worker processes as the backend's registry keeps them (pure, no I/O).

Each ``postroom worker`` process writes a :class:`WorkerInfo` at start and on every
heartbeat; the backend keeps it until its expiry (a few missed heartbeats), so a
process that died without saying so ages out on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .message import from_ms

__all__ = ["HEARTBEAT_SECONDS", "MISSED_HEARTBEATS", "WorkerInfo"]

# A worker writes its record this often; a record not refreshed for
# MISSED_HEARTBEATS heartbeats is gone from the listing.
HEARTBEAT_SECONDS = 10.0
MISSED_HEARTBEATS = 3


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One worker process: where it runs, what it consumes, what it has done.

    ``in_flight`` counts the messages it holds now; ``handled`` and ``failed`` the
    attempts that ended since it started (acked, and retried or dead-lettered).
    """

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    in_flight: int
    handled: int
    failed: int
    started_at: datetime
    last_seen: datetime
    heartbeat: float = HEARTBEAT_SECONDS

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (times as ISO 8601 with milliseconds)."""
        return {
            "id": self.id,
            "host": self.host,
            "pid": self.pid,
            "queues": list(self.queues),
            "concurrency": self.concurrency,
            "in_flight": self.in_flight,
            "handled": self.handled,
            "failed": self.failed,
            "started_at": self.started_at.isoformat(timespec="milliseconds"),
            "last_seen": self.last_seen.isoformat(timespec="milliseconds"),
            "heartbeat": self.heartbeat,
        }

    def dumps(self) -> str:
        """The record a backend stores (times in milliseconds)."""
        doc = self.to_dict()
        doc["started_at"] = int(self.started_at.timestamp() * 1000)
        doc["last_seen"] = int(self.last_seen.timestamp() * 1000)
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def loads(cls, record: str) -> WorkerInfo:
        """Inverse of :meth:`dumps`."""
        doc = json.loads(record)
        return cls(
            id=str(doc["id"]),
            host=str(doc["host"]),
            pid=int(doc["pid"]),
            queues=tuple(str(q) for q in doc["queues"]),
            concurrency=int(doc["concurrency"]),
            in_flight=int(doc["in_flight"]),
            handled=int(doc["handled"]),
            failed=int(doc["failed"]),
            started_at=from_ms(int(doc["started_at"])),
            last_seen=from_ms(int(doc["last_seen"])),
            heartbeat=float(doc.get("heartbeat", HEARTBEAT_SECONDS)),
        )
