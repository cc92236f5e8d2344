"""Key names: every key of one queue shares the hash tag ``{prefix:queue}``."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...model.errors import ConfigurationError
from .._urls import check_authority, check_db_number, redact

__all__ = [
    "QUEUE_KEY_KINDS",
    "GlobalKeys",
    "parse_url",
    "queue_keys",
    "queue_tag",
]

# The suffixes of a queue's keys (lib.lua builds the same names from the tag).
QUEUE_KEY_KINDS = (
    "policy",  # string: the queue policy as JSON
    "queued",  # zset: id -> available_at ms (ready and delayed messages)
    "leased",  # zset: id -> lease expiry ms
    "lease",  # hash: id -> lease token + consumer id
    "att",  # hash: id -> attempts
    "msg",  # hash: id -> payload (meta JSON, newline, body)
    "hist",  # hash: id -> JSON array of history entries
    "live",  # zset: id -> enqueued_at ms (every message not dead)
    "dead",  # zset: id -> dead_at ms
    "dinfo",  # hash: id -> dead letter reason
    "counters",  # hash: counter -> value
    "notify",  # list: wake-up tokens for blocked consumers
    "dedup",  # hash: dedup key -> "id|window end ms"
    "dedupx",  # zset: dedup key -> window end ms (garbage collection)
    "pq",  # zset: id -> available_at ms - priority * 2^42 (priorities 1..9)
    "ord",  # hash: id -> "priority|available_at|-" or "...|g<group>"
    "gnext",  # hash: id -> the id sent next in its group
    "gtail",  # hash: group -> the id sent last in it
    "gwait",  # zset: id -> available_at ms (messages waiting behind their group)
    "bucket",  # hash: rate, burst, tokens, at (a rate-limited queue's bucket)
)

_EXAMPLE = "redis://localhost:6379/0"
_SCHEMES = {
    "redis": "redis",
    "rediss": "rediss",
    "valkey": "redis",
    "valkeys": "rediss",
}


def queue_tag(prefix: str, queue: str) -> str:
    """The hash tag shared by every key of ``queue`` (the scripts' only KEYS)."""
    return f"{{{prefix}:{queue}}}"


def queue_keys(prefix: str, queue: str) -> list[str]:
    """Every key of ``queue``, in ``QUEUE_KEY_KINDS`` order."""
    tag = queue_tag(prefix, queue)
    return [f"{tag}:{kind}" for kind in QUEUE_KEY_KINDS]


class GlobalKeys:
    """Keys that are not per queue: the queue registry, topics, subscriptions."""

    def __init__(self, prefix: str) -> None:
        tag = f"{{{prefix}}}"
        self.queues = f"{tag}:queues"
        self.subscriptions = f"{tag}:subscriptions"
        self.published = f"{tag}:published"
        self.unrouted = f"{tag}:unrouted"


def parse_url(url: str) -> tuple[str, str]:
    """Split a postroom Redis URL into a redis-py URL and the key prefix.

    ``valkey://`` is read as ``redis://``; the ``prefix`` query parameter (default
    ``postroom``) is removed, every other parameter is passed on to redis-py.
    """
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ConfigurationError(f"{redact(url)!r} is not a redis:// or valkey:// URL")
    check_authority(url, host_required=True, example=_EXAMPLE)
    check_db_number(url, _EXAMPLE)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = "postroom"
    rest = []
    for name, value in query:
        if name == "prefix":
            prefix = value
        else:
            rest.append((name, value))
    if not prefix or any(c in prefix for c in "{} "):
        raise ConfigurationError(
            f"invalid key prefix {prefix!r}: use letters, digits, '.', '-', '_' or ':'"
        )
    redis_url = urlunsplit(
        (scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment)
    )
    return redis_url, prefix
