"""Deliveries claimed by a consumer's wait, kept until its next claim.

A waiting consumer sends ``BLPOP notify`` and the claim script in one pipeline:
Redis runs the claim the moment the wait ends, so a woken consumer has its
messages without another round trip. They are handed out by the next ``claim``
with the same lease and consumer; any other (or an expired one) is released.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...model.message import Delivery, now_ms

__all__ = ["ClaimArgs", "Prefetched"]

# (max_messages, lease_ms, consumer) of a queue's last claim.
ClaimArgs = tuple[int, int, str]

_MARGIN_MS = 50  # a prefetched lease this close to its end is given back instead


@dataclass
class Prefetched:
    """Per queue: the last claim's arguments and the deliveries claimed ahead."""

    args: dict[str, ClaimArgs] = field(default_factory=dict)
    held: dict[str, tuple[tuple[int, str], list[Delivery]]] = field(
        default_factory=dict
    )

    def put(
        self, queue: str, lease_ms: int, consumer: str, got: list[Delivery]
    ) -> list[Delivery]:
        """Keep deliveries claimed ahead for ``queue``; return any held ones made
        with other arguments (to release)."""
        key = (lease_ms, consumer)
        old_key, current = self.held.get(queue, (key, []))
        if old_key != key:
            self.held[queue] = (key, got)
            return current
        self.held[queue] = (key, current + got)
        return []

    def take(
        self, queue: str, n: int, lease_ms: int, consumer: str
    ) -> tuple[list[Delivery], list[Delivery]]:
        """Up to ``n`` usable deliveries, and those to release (other arguments,
        or a lease about to end)."""
        entry = self.held.pop(queue, None)
        if entry is None:
            return [], []
        key, got = entry
        if key != (lease_ms, consumer):
            return [], got
        limit = (now_ms() + _MARGIN_MS) / 1000
        fresh: list[Delivery] = []
        stale: list[Delivery] = []
        for d in got:
            (fresh if d.lease_expires_at.timestamp() > limit else stale).append(d)
        if len(fresh) > n:
            self.held[queue] = (key, fresh[n:])
        return fresh[:n], stale

    def drain(self) -> list[Delivery]:
        """Every delivery still held (to release on close)."""
        out = [d for _, got in self.held.values() for d in got]
        self.held.clear()
        return out
