"""What a waiting consumer's held pull request brings ahead of its next claim."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from ._inbox import Pulled

__all__ = ["Held"]


@dataclass(eq=False)
class Held:
    """One queue's held pull request (at most one at a time) and the messages it
    delivered that no claim took yet, each with the time its request was sent
    (the start of its lease: never after the server's)."""

    lease_ms: int
    consumer: str
    sent_ms: int
    items: list[tuple[Pulled, int]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        """Whether the request is still open on the server (and read)."""
        return self.task is not None and not self.task.done()

    def add(self, msg: Pulled) -> None:
        """A message the request delivered."""
        self.items.append((msg, self.sent_ms))
        self.arrived.set()

    def take(self, n: int) -> list[tuple[Pulled, int]]:
        """Up to ``n`` of the messages, oldest first."""
        out, self.items = self.items[:n], self.items[n:]
        if not self.items and self.active:
            self.arrived.clear()
        return out
