"""FIFO message groups on JetStream: only a group's head is out.

A grouped message is first stored on the queue's group stream (G, limits
retention, one subject per group), in send order. One message per group at a
time, its *head*, is let out: copied to its lane (``_lanes``) and deleted from G.
From then on it is an ordinary message of the queue (claimed, retried, released,
leased again after an expiry), and no other message of its group is out until
it is acked or becomes a dead letter; then the next one of G is let out. So a
group delivers in send order, one at a time, whatever its head goes through, and
claims need to know nothing about groups.

The group's state is one KV key (``grp.<q>.<group>``): the id and G sequence of
the head that is out (``o``, ``s``), when it was let out (``t``) and a version
(``v``) that every send to the group raises by compare-and-set, so that a head's
end racing a send always reads the group again (the send's message is then seen
by one of the two).

A process that stops half-way leaves a group waiting: its state says a head is
out that is stored nowhere, or nothing is out while messages wait on G. The next
send to the group repairs it (see :meth:`Groups.let_out`), and so do claims:
every few seconds (:data:`_SWEEP_EVERY`), a claim of a queue starts a look at the
groups with messages waiting on G (one stream info) and repairs those whose head
went out more than :data:`_STALE_MS` ago or that have none out, at most
:data:`_SWEEP_GROUPS` groups per look, in the background.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Coroutine, Sequence
from typing import Any

from nats.js.api import RawStreamMsg

from ...model.errors import QueueNotFound
from ...model.message import now_ms
from ._lanes import Lanes
from ._names import untoken
from ._records import Meta, message_headers, meta_of

__all__ = ["Groups"]

log = logging.getLogger(__name__)

# A head let out this long ago whose copy is still on G was let out by a process
# that stopped half-way (before its copy was stored): the next send finishes it.
_STALE_MS = 10_000
_STATES_KEPT = 10_000  # group states a process keeps (the last written)
_SCAN_LIMIT = 100  # messages of a priority looked through for a stale head
_SWEEP_EVERY = 5.0  # seconds between a process's looks at a queue's groups
_SWEEP_GROUPS = 100  # waiting groups whose state one look reads (a random few)

# What G held after a head, by a state of this revision (see Groups.peek_next).
Ahead = tuple[int, RawStreamMsg | None]


class Groups(Lanes):
    """Joining groups and letting their heads out."""

    _group_streams: set[str]
    _states: OrderedDict[str, tuple[dict[str, Any], int]]
    _swept: dict[str, float]
    _sweeps: set[asyncio.Future[None]]

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self._group_streams = set()  # queues whose G stream this process made
        self._states = OrderedDict()  # group key -> the state written last, revision
        self._swept = {}  # queue -> when this process last looked at its groups
        self._sweeps = set()

    async def aclose(self) -> None:
        for task in self._sweeps:
            task.cancel()
        await asyncio.gather(*self._sweeps, return_exceptions=True)
        await super().aclose()

    def sweep_groups(self, queue: str) -> None:
        """Start a look at the queue's waiting groups (see the module's doc)
        unless this process started one less than :data:`_SWEEP_EVERY` ago."""
        now = time.monotonic()
        if now - self._swept.get(queue, -_SWEEP_EVERY) < _SWEEP_EVERY:
            return
        self._swept[queue] = now
        task = asyncio.ensure_future(self._sweep(queue))
        self._sweeps.add(task)
        task.add_done_callback(self._sweeps.discard)

    async def _sweep(self, queue: str) -> None:
        n = self.names
        try:
            info = await self.jet.stream_info(
                n.group_stream(queue), queue, n.group_subject(queue)
            )
            waiting = [s.rsplit(".", 1)[1] for s in info.state.subjects or {}]
            if len(waiting) > _SWEEP_GROUPS:
                waiting = random.sample(waiting, _SWEEP_GROUPS)
            for tok in waiting:
                group = untoken(tok)
                got = await self.meta.get(self.group_key(queue, group))
                state = got[0] if got is not None else {}
                age = now_ms() - int(state.get("t") or 0)
                if state.get("o") is None or age > _STALE_MS:
                    await self.let_out(queue, group)
        except QueueNotFound:
            return  # no group stream (yet): nothing waits
        except Exception as exc:  # the next look tries again
            log.debug("looking at the groups of %r failed: %s", queue, exc)

    async def join_group(
        self, queue: str, group: str, items: Sequence[tuple[Meta, bytes, str]]
    ) -> int:
        """Store messages (meta, body, publish id) at the end of ``group``, in
        order, then let its head out if none is; how many were new."""
        n = self.names
        if queue not in self._group_streams:
            await self.create_group_stream(queue)
            self._group_streams.add(queue)
        new = 0
        for meta, body, msg_id in items:  # one at a time: G's order is the group's
            args = (n.group_subject(queue, group), body, message_headers(meta, msg_id))
            try:
                ack = await self.jet.publish(
                    *args, stream=n.group_stream(queue), queue=queue
                )
            except QueueNotFound:  # the queue was deleted (and made again?)
                if await self.get_policy(queue) is None:
                    raise
                await self.create_group_stream(queue)
                ack = await self.jet.publish(
                    *args, stream=n.group_stream(queue), queue=queue
                )
            new += not ack.duplicate
        await self.let_out(queue, group)
        return new

    async def peek_next(self, queue: str, group: str, finished: str) -> Ahead | None:
        """What G holds after head ``finished`` by the state this process wrote
        last (read while the head's ack goes out), for :meth:`let_out`; ``None``
        when that state is not known here or the read failed. G only grows past
        a head, and a message stored after the read came with a send whose
        compare-and-set of the state makes ``let_out``'s fail: it reads again."""
        cached = self._states.get(self.group_key(queue, group))
        if cached is None or cached[0].get("o") != finished:
            return None
        n = self.names
        last = int(cached[0].get("s") or 0)
        try:
            subject = n.group_subject(queue, group)
            raw = await self.jet.get(n.group_stream(queue), subject, seq=last + 1)
        except Exception:
            return None
        return cached[1], raw

    async def let_out(
        self,
        queue: str,
        group: str,
        finished: str | None = None,
        ahead: Ahead | None = None,
        later: list[Coroutine[Any, Any, None]] | None = None,
    ) -> None:
        """Let the group's next message out unless its head is out; with
        ``finished`` (the id of a head that was acked or became a dead letter),
        that head is over first. ``ahead``: what :meth:`peek_next` read;
        ``later``: where the removal of a let-out head from G goes, for the
        caller to await (with its claim), instead of awaiting it here."""
        key = self.group_key(queue, group)
        while True:
            cached = self._states.pop(key, None)
            got = cached if cached is not None else await self.meta.get(key)
            state: dict[str, Any]
            state, revision = got if got is not None else ({}, 0)
            peeked = ahead if cached is not None else None
            if peeked is not None and peeked[0] != revision:
                peeked = None
            ahead = None
            out = state.get("o")
            if finished is not None:
                if out != finished:
                    if cached is not None:
                        continue  # read it from the server before giving up
                    return  # over already (ended twice, or the queue was purged)
                out = None
            version = int(state.get("v") or 0) + 1
            if out is not None:
                bumped = {**state, "v": version}
                stale = now_ms() - int(state.get("t") or 0) > _STALE_MS
                if not stale or await self._head_alive(queue, group, state):
                    if stale:
                        bumped["t"] = now_ms()
                    if await self._write(key, bumped, revision):
                        return
                    continue
            if await self._let_next_out(
                queue, group, (state, revision, version), peeked, later
            ):
                return

    async def _write(self, key: str, state: dict[str, Any], revision: int) -> bool:
        """Compare-and-set a group's state; the value written is kept, so that
        this process's next write of the group needs no read (a stale one only
        fails its compare-and-set and is read again)."""
        stored = await self.meta.cas(key, state, revision)
        if stored is None:
            return False
        self._states[key] = (state, stored)
        while len(self._states) > _STATES_KEPT:
            self._states.popitem(last=False)
        return True

    async def _let_next_out(
        self,
        queue: str,
        group: str,
        read: tuple[dict[str, Any], int, int],
        peeked: Ahead | None,
        later: list[Coroutine[Any, Any, None]] | None,
    ) -> bool:
        """Let out the first message of G after the last head (``peeked``: read
        already); whether the group's state read (state, revision, version) was
        still at its revision (else: read it again)."""
        state, revision, version = read
        n = self.names
        key = self.group_key(queue, group)
        stream = n.group_stream(queue)
        last = int(state.get("s") or 0)
        if peeked is not None:
            raw = peeked[1]
        else:
            subject = n.group_subject(queue, group)
            raw = await self.jet.get(stream, subject, seq=last + 1)
        meta = meta_of(raw.headers) if raw is not None else None
        if raw is None or raw.seq is None or meta is None:
            return await self._write(
                key, {"o": None, "s": last, "v": version}, revision
            )
        head = {"o": meta.id, "s": raw.seq, "p": meta.priority, "t": now_ms()}
        head["v"] = version
        if not await self._write(key, head, revision):
            return False
        await self.store(queue, meta, raw.data or b"", f"{meta.id}.g{raw.seq}")
        removal = self.jet.delete_msg(stream, raw.seq)
        if later is None:
            await removal
        else:
            later.append(removal)
        return True

    async def _head_alive(self, queue: str, group: str, state: dict[str, Any]) -> bool:
        """Whether the head let out a while ago is still stored: on G (then its
        letting out is finished here: a process stopped half-way), delayed, or
        ready or leased in its lane. A process that stopped between a head's ack
        (or dead letter) and the next one's letting out leaves a head stored
        nowhere: the group goes on then. The delay stream is read before and
        after the lane, as a retry or a move stores the new copy before it
        removes the old one."""
        n = self.names
        head, seq = str(state.get("o")), int(state.get("s") or 0)
        stream = n.group_stream(queue)
        raw = await self.jet.get(stream, n.group_subject(queue, group), seq=seq)
        meta = meta_of(raw.headers) if raw is not None else None
        if raw is not None and raw.seq == seq and meta is not None:
            # The same publish id as the first try: stored once within two minutes.
            await self.store(queue, meta, raw.data or b"", f"{meta.id}.g{seq}")
            await self.jet.delete_msg(stream, seq)
            return True
        delayed = (n.delay_stream(queue), n.delay_subject(queue, head))
        if await self.jet.get(*delayed, last=True) is not None:
            return True
        priority = int(state.get("p") or 0)
        if not priority:
            ready = n.stream(queue), n.subject(queue, head)
            if await self.jet.get(*ready, last=True) is not None:
                return True
        else:
            lane = n.prio_stream(queue), n.prio_subject(queue, priority)
            raws = await self.scan(*lane, _SCAN_LIMIT)
            if len(raws) == _SCAN_LIMIT or any(
                (m := meta_of(r.headers)) is not None and m.id == head for r in raws
            ):
                return True
        return await self.jet.get(*delayed, last=True) is not None
