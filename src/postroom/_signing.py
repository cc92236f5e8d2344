"""Webhook signing and endpoint validation: pure functions, no I/O.

The signature header is ``Postroom-Signature: t=<unix time>,v1=<hex>``, where
``hex`` is the HMAC-SHA256 of ``f"{t}.".encode() + body`` keyed with the
subscription's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from ._errors import ConfigurationError

__all__ = [
    "SIGNATURE_HEADER",
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


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> bool:
    """Whether ``body`` carries a valid ``Postroom-Signature`` made with ``secret``.

    ``headers`` is any mapping of the request's headers (case is ignored). A
    signature older or newer than ``tolerance`` seconds is refused (replay guard).
    """
    value = None
    for key, val in headers.items():
        if key.lower() == SIGNATURE_HEADER.lower():
            value = val
            break
    if not value:
        return False
    parts = dict(p.strip().split("=", 1) for p in value.split(",") if "=" in p)
    try:
        t = int(parts["t"])
    except (KeyError, ValueError):
        return False
    current = time.time() if now is None else now
    if abs(current - t) > tolerance:
        return False
    expected = sign(secret, t, body)
    candidates = [v for k, v in parts.items() if k == "v1"]
    return any(hmac.compare_digest(expected, c) for c in candidates)


def validate_endpoint(url: str) -> str:
    """Check a push endpoint is an absolute http(s) URL; return it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ConfigurationError(
            f"push endpoint {url!r} must be an http:// or https:// URL"
        )
    if not parts.hostname:
        raise ConfigurationError(f"push endpoint {url!r} has no host name")
    return url
