"""Checks of a backend URL's host, port and database number, so that a malformed
URL is one clear :class:`~postroom.ConfigurationError` naming the problem, not a
driver's traceback. Error messages show the URL without its password."""

from __future__ import annotations

from urllib.parse import urlsplit

from ..model.errors import ConfigurationError

__all__ = ["HOST_REQUIRED", "check_authority", "check_db_number", "redact"]

# Schemes whose URL names no network host.
_LOCAL = frozenset({"memory", "sqlite"})
# Schemes whose URL must name a host (PostgreSQL's may not: libpq then uses its
# local socket).
HOST_REQUIRED = frozenset(
    {"redis", "rediss", "valkey", "valkeys", "amqp", "amqps", "nats", "tls"}
)


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    head, sep, tail = url.partition("://")
    authority, slash, rest = tail.partition("/")
    if "@" not in authority:
        return url
    creds, _, hosts = authority.rpartition("@")
    user, colon, _ = creds.partition(":")
    shown = f"{user}:***" if colon else user
    return f"{head}{sep}{shown}@{hosts}{slash}{rest}"


def _split_host(item: str) -> tuple[str, str]:
    """``host[:port]`` (``[v6]:port`` too) into host and port text."""
    if item.startswith("["):
        host, _, rest = item.partition("]")
        return host + "]", rest.removeprefix(":")
    host, _, port = item.partition(":")
    return host, port


def check_authority(url: str, *, host_required: bool, example: str) -> None:
    """Refuse a URL whose host is missing (when required) or whose port is not a
    number from 1 to 65535; several ``host:port`` pairs separated by commas (as
    libpq takes them) are checked each."""
    parts = urlsplit(url)
    if parts.scheme.lower() in _LOCAL:
        return
    hosts = parts.netloc.rpartition("@")[2]
    for item in hosts.split(","):
        host, port = _split_host(item)
        if host_required and not host:
            raise ConfigurationError(
                f"{redact(url)!r} names no host: give one, e.g. {example}"
            )
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ConfigurationError(
                f"{redact(url)!r} has the port {port!r}: a port is a number from 1 "
                f"to 65535, e.g. {example}"
            )


def check_db_number(url: str, example: str) -> None:
    """Refuse a path that is not a database number (``/0``, ``/15``...)."""
    path = urlsplit(url).path.strip("/")
    if path and not (path.isdigit() and int(path) < 2**31):
        raise ConfigurationError(
            f"{redact(url)!r} has the database {path!r}: the path is a database "
            f"number (0, 1, ...), e.g. {example}"
        )
