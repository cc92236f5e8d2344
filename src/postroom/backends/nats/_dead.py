"""Dead letters on JetStream: listed, shown, redriven and purged.

A queue's dead letters are a stream of their own (limits retention), one message
per dead letter on ``<prefix>.x.<queue>.<id>``: the original body, and in headers
the message's meta with its whole history, the source queue, the reason and the
time of death.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from nats.js.api import RawStreamMsg

from ...model.message import DeadLetter, now_ms
from ...model.queries import DeadLetterQuery
from ._names import valid_id
from ._records import Meta, dead_letter_from, meta_of
from ._send import Sending

__all__ = ["DeadLetters"]

_SCAN_BATCH = 64


class DeadLetters(Sending):
    """Reading and moving a queue's dead letters."""

    async def _letters(
        self, queue: str, query: DeadLetterQuery
    ) -> list[tuple[RawStreamMsg, DeadLetter]]:
        n = self.names
        stream = n.dead_stream(queue)
        ids, limit, wanted = query.ids, query.limit, query.matches
        out: list[tuple[RawStreamMsg, DeadLetter]] = []
        if ids is not None:
            for mid in dict.fromkeys(ids):
                if len(out) >= limit or not valid_id(mid):
                    continue
                raw = await self.jet.get(stream, n.dead_subject(queue, mid), last=True)
                dl = dead_letter_from(raw.headers, raw.data or b"") if raw else None
                if raw is not None and dl is not None and wanted(dl):
                    out.append((raw, dl))
            return out
        seq = 1
        while len(out) < limit:
            raws = await self.scan(stream, n.dead_subject(queue), _SCAN_BATCH, seq)
            for raw in raws:
                dl = dead_letter_from(raw.headers, raw.data or b"")
                if dl is not None and wanted(dl) and len(out) < limit:
                    out.append((raw, dl))
            if len(raws) < _SCAN_BATCH:
                break
            seq = int(raws[-1].seq or 0) + 1
        return out

    async def dead_letters(
        self, queue: str, query: DeadLetterQuery
    ) -> list[DeadLetter]:
        await self.policy(queue)
        found = await self._letters(queue, query)
        return [dl for _, dl in found]

    async def redrive(
        self, queue: str, *, ids: Sequence[str] | None, to: str, limit: int
    ) -> list[str]:
        """Each dead letter is stored on ``to`` and then deleted from the dead
        letters. An interruption between the two leaves it in both places; the
        copy's ``Nats-Msg-Id`` makes a redrive run again within two minutes store
        it once."""
        await self.policy(queue)
        await self.policy(to)
        now = now_ms()
        letters = [
            (raw, meta)
            for raw, _ in await self._letters(queue, DeadLetterQuery(limit, ids=ids))
            if (meta := meta_of(raw.headers)) is not None and raw.seq is not None
        ]

        async def store(raw: RawStreamMsg, meta: Meta) -> None:
            copy = replace(
                meta, base=0, redrives=meta.redrives + 1, history=[], available_ms=now
            )
            msg_id = f"{copy.id}.x{raw.seq}"
            if copy.group is not None:
                await self.join_group(to, copy.group, [(copy, raw.data or b"", msg_id)])
            else:
                await self.store(to, copy, raw.data or b"", msg_id)

        # Every copy is stored (all at once) before any dead letter is deleted.
        await asyncio.gather(*(store(raw, meta) for raw, meta in letters))
        dead = self.names.dead_stream(queue)
        await asyncio.gather(
            *(self.jet.delete_msg(dead, int(raw.seq or 0)) for raw, _ in letters)
        )
        moved = [meta.id for _, meta in letters]
        if moved:
            await self.tally.add(
                self.count_key(queue, "redriven"), {"redriven": len(moved)}
            )
        return moved
