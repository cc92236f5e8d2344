"""Webhook signing and endpoint validation: pure functions, no I/O.

The signature header is ``Postroom-Signature: t=<unix time>,v1=<hex>``, where
``hex`` is the HMAC-SHA256 of ``f"{t}.".encode() + body`` keyed with the
subscription's secret (UTF-8). A header may carry several ``v1`` entries (while a
secret is being rotated); a receiver accepts the request when any of them matches.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from .errors import InvalidArgument

__all__ = [
    "SIGNATURE_HEADER",
    "parse_signature_header",
    "sign",
    "signature_header",
    "validate_endpoint",
    "verify_signature",
]

SIGNATURE_HEADER = "Postroom-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"`` with ``secret``."""
    payload = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The value of the ``Postroom-Signature`` header for ``body``."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={sign(secret, t, body)}"


def parse_signature_header(value: str) -> tuple[int | None, list[str]]:
    """Split a ``Postroom-Signature`` value into its timestamp and ``v1`` digests.

    The timestamp is ``None`` when missing or not an integer.
    """
    timestamp: int | None = None
    digests: list[str] = []
    for part in value.split(","):
        key, sep, val = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(val)
            except ValueError:
                return None, []
        elif key == "v1":
            digests.append(val.strip())
    return timestamp, digests


def _header(headers: Mapping[str, str] | Iterable[tuple[str, str]], name: str) -> str:
    items = headers.items() if isinstance(headers, Mapping) else headers
    wanted = name.lower()
    for key, val in items:
        if key.lower() == wanted:
            return val
    return ""


def verify_signature(
    secret: str,
    headers: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """Whether ``body`` carries a valid ``Postroom-Signature`` made with ``secret``.

    ``headers`` is any mapping (or list of pairs) of the request's headers; case
    is ignored. ``body`` must be the raw request body, byte for byte. A signature
    more than ``tolerance`` seconds away from ``now`` is refused (replay guard).
    """
    value = _header(headers, SIGNATURE_HEADER)
    if not value:
        return False
    timestamp, digests = parse_signature_header(value)
    if timestamp is None or not digests:
        return False
    current = time.time() if now is None else now
    # compared, not subtracted: a huge timestamp would overflow a float
    if not current - tolerance <= timestamp <= current + tolerance:
        return False
    expected = sign(secret, timestamp, bytes(body)).encode()
    # as bytes: a hostile digest may hold any character (str needs ASCII)
    candidates = [d.encode("utf-8", "surrogatepass") for d in digests]
    # compare every candidate (no early exit) so timing says nothing about which
    return any([hmac.compare_digest(expected, d) for d in candidates])


def validate_endpoint(url: str, arg: str = "push_endpoint") -> str:
    """Check a push endpoint is an absolute http(s) URL; return it.

    Raises :class:`~postroom.InvalidArgument` naming ``arg`` and saying what is
    wrong otherwise.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidArgument(f"{arg} must be a non-empty http(s) URL")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise InvalidArgument(
            f"{arg} {url!r} contains whitespace or control characters"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise InvalidArgument(f"{arg} {url!r} is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidArgument(
            f"{arg} {url!r} must be an http:// or https:// URL, "
            "e.g. https://example.com/hooks/postroom"
        )
    if not parts.hostname:
        raise InvalidArgument(f"{arg} {url!r} has no host name")
    return url
