"""Sending on JetStream: one publish per message (acknowledged by the stream),
dedup keys claimed in KV, the ``sent`` counter added in the same round trip.
Grouped messages join their group (``_groups``)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Sequence

from ...model.message import Message, now_ms
from ._groups import Groups
from ._names import token
from ._records import Meta

__all__ = ["Sending"]


class Sending(Groups):
    """Storing new copies of messages."""

    async def enqueue(
        self, queue: str, messages: Sequence[Message], *, dedup_window_ms: int
    ) -> list[str]:
        now = now_ms()
        ids: list[str] = []
        new: list[Message] = []
        for m in messages:
            first = None
            if m.dedup_key is not None:
                first = await self._dedup(queue, m, now, dedup_window_ms)
            ids.append(first or m.id)
            if first is None:
                new.append(m)
        loose = [m for m in new if m.group is None]
        if len(loose) == 1:
            # A lone send: its publish is written at once, and its counter once
            # the stream has stored it. Written together, the counter's
            # compare-and-set (a KV store on the server) held the message's
            # delivery to a waiting consumer back by about 0.3 ms.
            [m] = loose
            key = self.count_key(queue, "sent")
            if await self.store(queue, Meta.of(m), m.body, f"{m.id}.s", True):
                await self.tally.add(key, {"sent": 1})
        elif loose:
            await self._counted(
                queue,
                "sent",
                len(loose),
                *(self.store(queue, Meta.of(m), m.body, f"{m.id}.s") for m in loose),
            )
        groups: dict[str, list[tuple[Meta, bytes, str]]] = {}
        for m in new:
            if m.group is not None:
                groups.setdefault(m.group, []).append((Meta.of(m), m.body, f"{m.id}.s"))
        for group, items in groups.items():
            stored = await self.join_group(queue, group, items)
            await self.tally.add(self.count_key(queue, "sent"), {"sent": stored})
        return ids

    async def _counted(
        self,
        queue: str,
        counter: str,
        n: int,
        *operations: Awaitable[object],
        weight: int = 1,
    ) -> None:
        """Run ``operations`` and add ``n`` to ``counter`` at the same time (one
        round trip, not two); take back what did not happen: a failed operation
        (``weight`` each), or a publish the stream already had (``False``)."""
        key = self.count_key(queue, counter)
        # The operations go out first: a consumer waiting for a sent message
        # gets it without the counter's write ahead of it. One operation (a
        # send, a batch of acks) runs in this task, so that its publish is
        # written without waiting for the event loop to start a task for it.
        counted: object
        if len(operations) == 1:
            counting = asyncio.ensure_future(self.tally.add(key, {counter: n}))
            try:
                done: list[object] = [await operations[0]]
            except Exception as exc:
                done = [exc]
            except BaseException:
                counting.cancel()
                raise
            [counted] = await asyncio.gather(counting, return_exceptions=True)
        else:
            *done, counted = await asyncio.gather(
                *operations, self.tally.add(key, {counter: n}), return_exceptions=True
            )
        failed = [r for r in done if isinstance(r, BaseException)]
        missed = weight * len(failed) + sum(1 for r in done if r is False)
        if not isinstance(counted, BaseException) and missed:
            await self.tally.add(key, {counter: -missed})
        for result in (counted, *failed):
            if isinstance(result, BaseException):
                raise result

    async def _dedup(
        self, queue: str, m: Message, now: int, window_ms: int
    ) -> str | None:
        """The id of the first message sent with ``m``'s dedup key while it is
        still known, or ``None`` after claiming the key for ``m``."""
        digest = hashlib.sha256(str(m.dedup_key).encode()).hexdigest()[:40]
        key = f"{token(queue)}.{digest}"
        while True:
            got = await self.dedup.get(key)
            revision = 0
            if got is not None:
                record, revision = got
                first = str(record["id"])
                if int(record["until"]) > now or await self._present(queue, first):
                    return first
            claim = {"id": m.id, "until": now + window_ms}
            if await self.dedup.cas(key, claim, revision) is not None:
                return None

    async def _present(self, queue: str, message_id: str) -> bool:
        n = self.names
        for stream, subject in (
            (n.stream(queue), n.subject(queue, message_id)),
            (n.delay_stream(queue), n.delay_subject(queue, message_id)),
        ):
            if await self.jet.get(stream, subject, last=True) is not None:
                return True
        return False
