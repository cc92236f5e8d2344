"""Dead letters and redrive of the Redis backend."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...model.message import DeadLetter, now_ms
from ...model.queries import DeadLetterQuery
from ._base import RedisBase
from ._records import (
    Redriven,
    as_text,
    dead_letter_from,
    order_args,
    rewrite_for_redrive,
)
from ._translate import translated

__all__ = ["DeadLettersMixin"]

_DEAD_PAGE = 200


class DeadLettersMixin(RedisBase):
    """Listing dead letters (filtered, paged) and moving them back."""

    @translated
    async def dead_letters(
        self, queue: str, query: DeadLetterQuery
    ) -> list[DeadLetter]:
        await self.scripts.run(
            "stats", self.script_keys(queue), [now_ms()]
        )  # lazy sweep
        ids, limit = query.ids, query.limit
        out: list[DeadLetter] = []
        start = 0
        while len(out) < limit:
            if ids is not None:
                page = list(ids[start : start + _DEAD_PAGE])
            else:
                page = [
                    as_text(m)
                    for m in await self.redis.zrange(
                        self.key(queue, "dead"), start, start + _DEAD_PAGE - 1
                    )
                ]
            if not page:
                break
            start += _DEAD_PAGE
            for dl in await self._load_dead(queue, page, ordered=ids is not None):
                if len(out) < limit and query.matches(dl):
                    out.append(dl)
        return out

    async def _load_dead(
        self, queue: str, ids: list[str], *, ordered: bool
    ) -> list[DeadLetter]:
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zmscore(self.key(queue, "dead"), ids)
            for kind in ("msg", "att", "dinfo", "hist"):
                pipe.hmget(self.key(queue, kind), ids)
            scores, payloads, attempts, reasons, histories = await pipe.execute()
        found = [
            dead_letter_from(
                mid,
                queue,
                payload=p,
                attempts=int(a or 0),
                reason=r,
                history=h,
                dead_at=s,
            )
            for mid, s, p, a, r, h in zip(
                ids, scores, payloads, attempts, reasons, histories, strict=True
            )
            if s is not None and p is not None
        ]
        if ordered:
            found.sort(key=lambda dl: (dl.dead_at, dl.id))
        return found

    @translated
    async def redrive(
        self, queue: str, *, ids: Sequence[str] | None, to: str, limit: int
    ) -> list[str]:
        now = now_ms()
        args = [now, "here" if to == queue else "take", limit, *(ids or ())]
        if ids is not None and not ids:
            return []
        if to == queue:
            moved = await self.scripts.run("redrive", self.script_keys(queue), args)
            return [m.decode() for m in moved]
        # Another queue may live on another Cluster slot: copy, then remove. An
        # interruption in between leaves the message in both places (at least once).
        taken = await self.scripts.run("redrive", self.script_keys(queue), args)
        payloads = {
            taken[i].decode(): rewrite_for_redrive(taken[i + 1], now)
            for i in range(0, len(taken), 2)
        }
        if not payloads:
            return []
        await self._store_redriven(to, payloads, now)
        dropped = await self.scripts.run(
            "redrive", self.script_keys(queue), [now, "drop", limit, *payloads]
        )
        return [m.decode() for m in dropped]

    async def _store_redriven(
        self, to: str, payloads: dict[str, Redriven], now: int
    ) -> None:
        args: list[Any] = [now, 0, "redrive"]
        for mid, r in payloads.items():
            args += (mid, now, r.enqueued_ms, "", *order_args(r.priority, r.group))
            args.append(r.payload)
        await self.scripts.run("enqueue", self.script_keys(to), args)
