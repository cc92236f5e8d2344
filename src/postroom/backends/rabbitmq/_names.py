"""RabbitMQ URL settings, AMQP names and delay buckets."""

from __future__ import annotations

import base64
import hashlib
import math
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...model.errors import ConfigurationError

__all__ = ["Names", "RabbitSettings", "amqp_name", "delay_bucket", "parse_url"]


# What AMQP (pamqp) accepts in a queue name; postroom names may hold any other
# character and are longer than an AMQP name can be once prefixed.
_SAFE = re.compile(r"[A-Za-z0-9._:@#,/+-]{1,150}")


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
    if len(prefix) > 40 or not _SAFE.fullmatch(prefix):
        raise ConfigurationError(
            f"invalid prefix {prefix!r} in {url!r}: use 1-40 letters, digits or "
            "._:@#,/+-"
        )
    broker = urlunsplit(parts._replace(query=urlencode(query)))
    return RabbitSettings(broker_url=broker, prefix=prefix)


def amqp_name(name: str) -> str:
    """A postroom queue name as a valid AMQP name part, one to one: kept when it
    is plain, else ``b64:`` and its URL-safe base64, else (too long) ``h:`` and
    its SHA-256."""
    if _SAFE.fullmatch(name) and not name.startswith(("b64:", "h:")):
        return name
    encoded = base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")
    if len(encoded) <= 150:
        return f"b64:{encoded}"
    return "h:" + hashlib.sha256(name.encode()).hexdigest()


class Names:
    """The AMQP names of one prefix: derived names come only from here."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.meta = f"{prefix}.meta"
        self.dedup = f"{prefix}.dedup"
        self.live = f"{prefix}.live"

    def ready(self, queue: str) -> str:
        """The quorum queue holding ``queue``'s ready and leased messages."""
        return f"{self.prefix}.q.{amqp_name(queue)}"

    def delay(self, queue: str, bucket_ms: int) -> str:
        """The TTL queue that holds ``queue``'s messages delayed ``bucket_ms``."""
        return f"{self.prefix}.d.{bucket_ms}.{amqp_name(queue)}"


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
