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

The trim of the wake-up list rides in the transaction of the send that is
expected to need it (:class:`WakeLengths`), and each queue's transaction is
packed in RESP once (:class:`PackedPlain`): a send costs one round trip and
little Python beyond its message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import Any

import redis.exceptions

from ...model.message import Message, to_ms_dt
from ._records import encode_message

__all__ = [
    "MAX_WAKE",
    "Command",
    "PackedPlain",
    "Unsure",
    "WakeLengths",
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
_MAX_QUEUES = 4096  # queues whose wake-up list lengths are kept
_PUSHED = 5  # the LPUSH reply's place in the EXEC reply

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


class WakeLengths:
    """How long each queue's wake-up list was after this client's last plain
    send to it. A send that would push it past ``2 * MAX_WAKE`` trims it in
    its own transaction (:func:`plain_commands` with ``trim``), as the script
    trims it, rather than in a round trip of its own after it."""

    def __init__(self) -> None:
        self._lengths: dict[str, int] = {}

    def trim_due(self, queue: str) -> bool:
        """Whether the next send's push is expected to pass ``2 * MAX_WAKE``."""
        return self._lengths.get(queue, 0) >= 2 * MAX_WAKE

    def pushed(
        self, key: KeyOf, queue: str, length: int, trimmed: bool
    ) -> list[Command]:
        """Record the list's ``length`` after a push (before the transaction's
        trim, if ``trimmed``); the trim still due when it was not expected."""
        follow = [] if trimmed else trim_command(key, queue, length)
        if trimmed or follow:
            length = min(length, MAX_WAKE)
        if len(self._lengths) >= _MAX_QUEUES and queue not in self._lengths:
            self._lengths.clear()
        self._lengths[queue] = length
        return follow


def plain_one(messages: Sequence[Message], unsure: Unsure) -> Message | None:
    """The message of a send that may go as plain commands, or ``None``."""
    if len(messages) != 1:
        return None
    m = messages[0]
    if m.dedup_key or m.group is not None or m.priority or m.id in unsure:
        return None
    return m


def plain_commands(
    key: KeyOf, queue: str, m: Message, *, trim: bool = False
) -> list[Command]:
    """The transaction storing ``m`` on ``queue`` as the enqueue script does;
    with ``trim``, the wake-up list is trimmed after the push (the sender
    expects it to grow past ``2 * MAX_WAKE``: see :class:`WakeLengths`)."""
    return _transaction(key, queue, _values(m), trim)


def _values(m: Message) -> tuple[str, bytes, int, int]:
    """What :func:`_transaction` stores of ``m``: its id, its payload, and when
    it is available and was enqueued (ms)."""
    available, enqueued = to_ms_dt(m.available_at), to_ms_dt(m.enqueued_at)
    return m.id, encode_message(m, enqueued, available), available, enqueued


def _transaction(
    key: KeyOf, queue: str, values: tuple[Any, Any, Any, Any], trim: bool
) -> list[Command]:
    """:func:`plain_commands` of the message's id, payload and times."""
    mid, payload, available, enqueued = values
    notify = key(queue, "notify")
    return [
        ("MULTI",),
        ("EXISTS", key(queue, "policy")),
        ("HSET", key(queue, "msg"), mid, payload),
        ("ZADD", key(queue, "queued"), available, mid),
        ("ZADD", key(queue, "live"), enqueued, mid),
        ("HINCRBY", key(queue, "counters"), "sent", 1),
        ("LPUSH", notify, "1"),
        *([("LTRIM", notify, 0, MAX_WAKE - 1)] if trim else []),
        ("EXEC",),
    ]


class _Hole(int):
    """A value of :func:`_transaction` left open in a :class:`PackedPlain`: the
    index of the message's id (0), payload (1), available (2) or enqueued (3)
    time."""


def _bulk(value: Any) -> bytes:
    """One RESP bulk string, packed as hiredis and redis-py pack arguments."""
    if isinstance(value, str):
        value = value.encode()
    elif isinstance(value, int):
        value = b"%d" % value
    return b"$%d\r\n%b\r\n" % (len(value), value)


class PackedPlain:
    """:func:`plain_commands` of one queue in RESP, packed once: a send fills in
    its message's id, payload and times (packing the eight commands anew costs
    about as much as the rest of a send's Python)."""

    def __init__(self, key: KeyOf, queue: str, *, trim: bool = False) -> None:
        holes = (_Hole(0), _Hole(1), _Hole(2), _Hole(3))
        commands = _transaction(key, queue, holes, trim)
        self.count = len(commands)  # replies to read
        parts: list[bytes] = []
        order: list[int] = []
        for command in commands:
            parts.append(b"*%d\r\n" % len(command))
            for arg in command:
                if isinstance(arg, _Hole):
                    parts.append(b"%b")
                    order.append(int(arg))
                else:
                    parts.append(_bulk(arg).replace(b"%", b"%%"))
        self._format = b"".join(parts)
        # The holes' values in packing order (six holes: itemgetter gives a tuple).
        self._pick: Callable[[tuple[bytes, ...]], tuple[bytes, ...]]
        self._pick = itemgetter(*order)

    def packed(self, m: Message) -> bytes:
        """The transaction storing ``m``, as :func:`plain_commands` packs."""
        mid, payload, available, enqueued = _values(m)
        rid = mid.encode()
        values = (
            b"$%d\r\n%b\r\n" % (len(rid), rid),
            b"$%d\r\n%b\r\n" % (len(payload), payload),
            _bulk(available),
            _bulk(enqueued),
        )
        return self._format % self._pick(values)


def plain_outcome(replies: Sequence[Any]) -> int | None:
    """The length of the wake-up list after the transaction, or ``None`` when
    the queue does not exist; raises an error reply."""
    done = replies[-1]
    for reply in (*replies, *(done if type(done) is list else ())):
        if isinstance(reply, Exception):
            raise reply
    if type(done) is not list:
        raise redis.exceptions.ResponseError(f"unexpected EXEC reply {done!r}")
    return int(done[_PUSHED]) if done[0] else None


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
