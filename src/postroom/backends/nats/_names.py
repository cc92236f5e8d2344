"""Stream, subject, consumer and KV key names of one postroom prefix.

A queue name becomes a subject token by unpadded URL-safe base64, which is
reversible (listing queues reads names back from KV keys) and uses only
characters that subjects, KV keys and stream names accept.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re

from ...model.errors import ConfigurationError

__all__ = [
    "CONSUMER",
    "LEVELS",
    "Names",
    "level_consumer",
    "token",
    "untoken",
    "valid_id",
]

CONSUMER = "postroom"
LEVELS = range(9, 0, -1)  # the priorities with a subject of their own, highest first
_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_MAX_STREAM_TOKEN = 120


@functools.lru_cache(maxsize=4096)
def token(name: str) -> str:
    """The subject token of a queue or topic name (remembered: every request
    names its queue's streams or subjects)."""
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def untoken(tok: str) -> str:
    """Inverse of :func:`token`."""
    return base64.urlsafe_b64decode(tok + "=" * (-len(tok) % 4)).decode()


def level_consumer(level: int) -> str:
    """The consumer of the priority stream that reads priority ``level``."""
    return f"p{level}"


def valid_id(message_id: str) -> bool:
    """Whether a message id can be a subject token (ids postroom makes always can)."""
    return bool(_ID.match(message_id))


class Names:
    """Every name derived from one prefix (``?prefix=`` in the URL)."""

    def __init__(self, prefix: str) -> None:
        if not _PREFIX.match(prefix):
            raise ConfigurationError(
                f"invalid NATS prefix {prefix!r}: use 1-64 letters, digits, '_' or '-'"
            )
        self.prefix = prefix
        self.meta_bucket = f"{prefix}_meta"
        self.dedup_bucket = f"{prefix}_dedup"

    @functools.lru_cache(maxsize=4096)  # noqa: B019 (one Names per backend)
    def _stream(self, kind: str, queue: str) -> str:
        tok = token(queue)
        if len(tok) > _MAX_STREAM_TOKEN:
            tok = hashlib.sha256(queue.encode()).hexdigest()[:40]
        return f"{self.prefix}_{kind}_{tok}"

    # Each queue has three streams: ready messages (Q), delayed ones (W) and dead
    # letters (X). Subjects end with the message id, so a message is found by id.
    def stream(self, queue: str) -> str:
        """The work-queue stream of ``queue``'s messages."""
        return self._stream("Q", queue)

    def delay_stream(self, queue: str) -> str:
        """The stream of ``queue``'s delayed messages."""
        return self._stream("W", queue)

    def dead_stream(self, queue: str) -> str:
        """The stream of ``queue``'s dead letters."""
        return self._stream("X", queue)

    def subject(self, queue: str, message_id: str = "*") -> str:
        """The subject of a ready message (``*``: all of them)."""
        return f"{self.prefix}.q.{token(queue)}.{message_id}"

    def delay_subject(self, queue: str, message_id: str = "*") -> str:
        """The subject of a delayed message."""
        return f"{self.prefix}.w.{token(queue)}.{message_id}"

    def dead_subject(self, queue: str, message_id: str = "*") -> str:
        """The subject of a dead letter."""
        return f"{self.prefix}.x.{token(queue)}.{message_id}"

    # A queue that uses priorities has a fourth stream (P): one subject and one
    # consumer per priority 1 to 9 (priority 0 stays on Q). A queue that uses
    # groups has a fifth (G): the messages behind their group's head, one subject
    # per group (see ``_groups``).
    def prio_stream(self, queue: str) -> str:
        """The work-queue stream of ``queue``'s ready messages of priority 1-9."""
        return self._stream("P", queue)

    def prio_subject(self, queue: str, level: int | str = "*") -> str:
        """The subject of ready messages of priority ``level`` (``*``: all)."""
        return f"{self.prefix}.p.{token(queue)}.{level}"

    def group_stream(self, queue: str) -> str:
        """The stream of ``queue``'s grouped messages waiting for their turn."""
        return self._stream("G", queue)

    def group_subject(self, queue: str, group: str | None = None) -> str:
        """The subject of a group's waiting messages (``None``: all groups)."""
        return (
            f"{self.prefix}.g.{token(queue)}.{'*' if group is None else token(group)}"
        )

    # One stream per prefix marks the leases that ended and were NAKed: their
    # messages wait to be delivered again, ready but counted by the consumer as
    # pending acks. A claim that delivers one again removes its mark.
    @property
    def ended_stream(self) -> str:
        """The stream of ended-lease marks."""
        return f"{self.prefix}_E"

    def ended_subject(self, stream: str, seq: int | str = ">") -> str:
        """The mark of message ``seq`` of ``stream`` (``>``: all of the stream)."""
        return f"{self.prefix}.e.{stream}.{seq}"

    def owns(self, stream: str) -> bool:
        """Whether a stream belongs to this prefix (used by tests' teardown)."""
        return stream.startswith(f"{self.prefix}_") or stream.startswith(
            f"KV_{self.prefix}_"
        )
