"""Dead letters of :class:`~postroom.client.core.AsyncClient`: list, look up,
redrive, purge."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import anyio

from ..model import arguments as check
from ..model.errors import ConfigurationError, DeadLetterNotFound
from ..model.message import DeadLetter
from ..model.queries import DeadLetterQuery
from ._base import ClientBase

__all__ = ["DeadLetters"]

_REDRIVE_BATCH = 100


def _check_redrive(ids: Sequence[str] | None, rate: float | None) -> None:
    if ids is not None and not all(isinstance(i, str) for i in ids):
        raise ConfigurationError(
            "redrive ids must be message id strings, e.g. "
            "[dl.id for dl in client.dead_letters(queue)]"
        )
    if rate is not None and rate <= 0:
        raise ConfigurationError("rate must be > 0 messages per second")


class DeadLetters(ClientBase):
    """The dead letter methods of the client."""

    async def dead_letters(
        self,
        queue: str,
        limit: int = 50,
        reason: str | None = None,
        error_contains: str | None = None,
    ) -> list[DeadLetter]:
        """Dead letters of ``queue``, oldest first, filtered by reason or error text."""
        check.check_dead_letters(queue, limit, reason, error_contains)
        await self.queue_policy(queue)
        query = DeadLetterQuery(limit, reason, error_contains)
        return await self.backend.dead_letters(queue, query)

    async def dead_letter(self, queue: str, message_id: str) -> DeadLetter:
        """One dead letter of ``queue`` by message id."""
        check.check_dead_letter(queue, message_id)
        await self.queue_policy(queue)
        query = DeadLetterQuery(1, ids=[message_id])
        found = await self.backend.dead_letters(queue, query)
        if not found:
            raise DeadLetterNotFound(
                f"no dead letter {message_id!r} on queue {queue!r}: "
                f"`postroom dlq list {queue}` lists them"
            )
        return found[0]

    async def redrive(
        self,
        queue: str,
        ids: Sequence[str] | None = None,
        to: str | None = None,
        limit: int | None = None,
        rate: float | None = None,
        dry_run: bool = False,
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Move dead letters of ``queue`` back to it (or to ``to``); return their ids.

        ``rate`` caps messages per second; ``dry_run`` returns what would move. Each
        batch moves atomically, so an interruption loses nothing.
        """
        check.check_redrive(queue, ids, to, limit, rate, dry_run)
        await self.queue_policy(queue)
        if isinstance(ids, str):
            ids = [ids]
        _check_redrive(ids, rate)
        target = to or queue
        if dry_run:
            query = DeadLetterQuery(limit if limit is not None else 2**31, ids=ids)
            found = await self.backend.dead_letters(queue, query)
            return [d.id for d in found]
        await self.ensure_queue(target)
        moved: list[str] = []
        remaining_ids = list(ids) if ids is not None else None
        batch = max(1, min(_REDRIVE_BATCH, int(rate))) if rate else _REDRIVE_BATCH
        started = time.monotonic()
        while limit is None or len(moved) < limit:
            n = batch if limit is None else min(batch, limit - len(moved))
            chunk = remaining_ids[:n] if remaining_ids is not None else None
            step = await self.backend.redrive(queue, ids=chunk, to=target, limit=n)
            if remaining_ids is not None:
                remaining_ids = remaining_ids[n:]
            moved.extend(step)
            if on_progress is not None and step:
                on_progress(len(step))
            if (remaining_ids is not None and not remaining_ids) or (
                remaining_ids is None and len(step) < n
            ):
                break
            if rate:
                ahead = len(moved) / rate - (time.monotonic() - started)
                if ahead > 0:
                    await anyio.sleep(ahead)
        return moved

    async def purge(self, queue: str, dead: bool = False) -> int:
        """Delete every message of ``queue`` (or its dead letters); return how many."""
        check.check_purge(queue, dead)
        await self.queue_policy(queue)
        return await self.backend.purge(queue, dead=dead)
