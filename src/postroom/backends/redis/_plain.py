"""A lone send without dedup key, group or priority: plain commands, one MULTI/EXEC.

Redis runs a Lua script several times slower than the same commands in a
transaction when its caches are cold, as they are for a send that arrives at an
idle server (measured on Redis 7.0: the enqueue script 100-110 us, its commands in
a MULTI/EXEC 36-39 us, a lone LPUSH 6-7 us), and every such send is on the path of
its message's latency. The transaction stores what the enqueue script stores for
a new id: the payload, the waiting and live entries, the ``sent`` count and a
wake-up token. Two things the script decides, it cannot:

- whether the queue exists: it reads that too, and the caller takes the writes
  back (:func:`undo_commands`) when it did not;
- whether the id is live already (a send retried after its reply was lost): a
  send whose transaction may have run without its reply arriving goes again
  through the script, which skips a live id (:class:`Unsure` remembers those ids
  for the client's own retry).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis.exceptions

from ...model.message import Message, to_ms_dt
from ._records import encode_message

__all__ = [
    "MAX_WAKE",
    "Command",
    "Unsure",
    "plain_commands",
    "plain_one",
    "plain_outcome",
    "trim_command",
    "undo_commands",
]

# Wake-up tokens kept after a trim, as lib.lua's MAX_WAKE; the list is trimmed
# once it holds more than twice as many.
MAX_WAKE = 16
_MAX_UNSURE = 10_000

Command = tuple[Any, ...]
KeyOf = Callable[[str, str], str]


class Unsure:
    """Ids whose plain send may have run without its reply (bounded, oldest
    forgotten first): their sends go through the script."""

    def __init__(self) -> None:
        self._ids: dict[str, None] = {}

    def __contains__(self, mid: object) -> bool:
        return mid in self._ids

    def add(self, mid: str) -> None:
        """Remember ``mid``."""
        self._ids[mid] = None
        if len(self._ids) > _MAX_UNSURE:
            del self._ids[next(iter(self._ids))]

    def discard(self, mid: str) -> None:
        """Forget ``mid`` (the script stored it)."""
        self._ids.pop(mid, None)


def plain_one(messages: Sequence[Message], unsure: Unsure) -> Message | None:
    """The message of a send that may go as plain commands, or ``None``."""
    if len(messages) != 1:
        return None
    m = messages[0]
    if m.dedup_key or m.group is not None or m.priority or m.id in unsure:
        return None
    return m


def plain_commands(key: KeyOf, queue: str, m: Message) -> list[Command]:
    """The transaction storing ``m`` on ``queue`` as the enqueue script does."""
    available, enqueued = to_ms_dt(m.available_at), to_ms_dt(m.enqueued_at)
    return [
        ("MULTI",),
        ("EXISTS", key(queue, "policy")),
        ("HSET", key(queue, "msg"), m.id, encode_message(m, enqueued, available)),
        ("ZADD", key(queue, "queued"), available, m.id),
        ("ZADD", key(queue, "live"), enqueued, m.id),
        ("HINCRBY", key(queue, "counters"), "sent", 1),
        ("LPUSH", key(queue, "notify"), "1"),
        ("EXEC",),
    ]


def plain_outcome(replies: Sequence[Any]) -> int | None:
    """The length of the wake-up list after the transaction, or ``None`` when
    the queue does not exist; raises an error reply."""
    for reply in replies[:-1]:
        if isinstance(reply, Exception):
            raise reply
    done = replies[-1]
    if isinstance(done, Exception):
        raise done
    if not isinstance(done, list):
        raise redis.exceptions.ResponseError(f"unexpected EXEC reply {done!r}")
    for reply in done:
        if isinstance(reply, Exception):
            raise reply
    return int(done[-1]) if done[0] else None


def undo_commands(key: KeyOf, queue: str, m: Message) -> list[Command]:
    """The transaction taking back the writes of :func:`plain_commands` (the
    queue did not exist)."""
    return [
        ("MULTI",),
        ("HDEL", key(queue, "msg"), m.id),
        ("ZREM", key(queue, "queued"), m.id),
        ("ZREM", key(queue, "live"), m.id),
        ("HINCRBY", key(queue, "counters"), "sent", -1),
        ("DEL", key(queue, "notify")),
        ("EXEC",),
    ]


def trim_command(key: KeyOf, queue: str, length: int) -> list[Command]:
    """The trim of a wake-up list of ``length`` tokens, if it needs one (as
    lib.lua's ``notify``)."""
    if length <= 2 * MAX_WAKE:
        return []
    return [("LTRIM", key(queue, "notify"), 0, MAX_WAKE - 1)]
