"""RabbitMQ URL settings, AMQP names and delay buckets."""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...model.errors import ConfigurationError

__all__ = ["Names", "RabbitSettings", "delay_bucket", "parse_url"]


@dataclass(frozen=True, slots=True)
class RabbitSettings:
    """What a ``amqp://`` URL says: the broker URL for aio-pika and postroom's
    own settings (``prefix``, ``dedup_max``)."""

    broker_url: str
    prefix: str = "postroom"


def parse_url(url: str) -> RabbitSettings:
    """Split postroom's query settings off an ``amqp://`` / ``amqps://`` URL."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    prefix = query.pop("prefix", "postroom")
    if not prefix or len(prefix) > 40 or any(c.isspace() for c in prefix):
        raise ConfigurationError(
            f"invalid prefix {prefix!r} in {url!r}: use 1-40 characters, no spaces"
        )
    broker = urlunsplit(parts._replace(query=urlencode(query)))
    return RabbitSettings(broker_url=broker, prefix=prefix)


class Names:
    """The AMQP names of one prefix: derived names come only from here."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.meta = f"{prefix}.meta"
        self.dedup = f"{prefix}.dedup"
        self.live = f"{prefix}.live"

    def ready(self, queue: str) -> str:
        """The quorum queue holding ``queue``'s ready and leased messages."""
        return f"{self.prefix}.q.{queue}"

    def delay(self, queue: str, bucket_ms: int) -> str:
        """The TTL queue that holds ``queue``'s messages delayed ``bucket_ms``."""
        return f"{self.prefix}.d.{bucket_ms}.{queue}"


def delay_bucket(delay_ms: int) -> int:
    """The delay queue's TTL for a delay: ``delay_ms`` rounded up to three
    significant bits (at most 12.5 % later), exact below 16 ms; 0 for none."""
    if delay_ms <= 0:
        return 0
    if delay_ms < 16:
        return delay_ms
    exp = math.floor(math.log2(delay_ms)) - 3
    mantissa = math.ceil(delay_ms / 2**exp)
    return int(mantissa * 2**exp)
