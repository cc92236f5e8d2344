"""AWS Signature Version 4, checked against the server's tokens (pure).

The access key id names a token (its ``name``; ``#1``, ``#2``... for the entries
of ``POSTROOM_TOKENS``), and the secret access key is the token's value: an SDK
configured with ``aws_access_key_id=<name>`` and ``aws_secret_access_key=<token>``
signs each request with a key only the token's holder can derive, and the token
itself never travels. The body must be signed (no ``UNSIGNED-PAYLOAD``). The
canonical request is built as botocore builds it for SQS (path quoted again, query
pairs sorted, header values trimmed), and the request date must be within 15
minutes of the server's clock. Presigned URLs (the signature in the query string)
are not accepted.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from .._auth import Token
from ._errors import error

__all__ = ["Signed", "parse_authorization", "verify"]

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_SECONDS = 15 * 60


@dataclass(frozen=True, slots=True)
class Signed:
    """The parts of an ``Authorization`` header."""

    access_key: str
    date: str
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(value: str) -> Signed:
    """Parse ``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...``."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise error(
            "IncompleteSignature",
            f"only {ALGORITHM} signatures are accepted (got {algorithm!r})",
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, _, val = part.strip().partition("=")
        fields[key] = val
    try:
        akid, date, region, service, terminal = fields["Credential"].split("/")
        headers = tuple(fields["SignedHeaders"].split(";"))
        signature = fields["Signature"]
    except (KeyError, ValueError):
        raise error(
            "IncompleteSignature",
            "the Authorization header needs Credential=<key>/<date>/<region>/"
            "<service>/aws4_request, SignedHeaders=... and Signature=...",
        ) from None
    if terminal != "aws4_request" or "host" not in headers:
        raise error("IncompleteSignature", "the signature must cover the Host header")
    return Signed(akid, date, region, service, headers, signature)


def _canonical_query(query: str) -> str:
    # The pairs as sent (already percent-encoded), sorted, as botocore signs them.
    pairs = [p.partition("=") for p in query.split("&")] if query else []
    return "&".join(f"{k}={v}" for k, _, v in sorted(pairs))


def canonical_request(
    method: str,
    raw_path: str,
    query: str,
    headers: Mapping[str, Sequence[str]],
    signed: Sequence[str],
    payload_hash: str,
) -> str:
    """The canonical request of SigV4 (non-S3 rules: the path quoted once more)."""
    lines = [method.upper(), quote(raw_path or "/", safe="/~"), _canonical_query(query)]
    for name in signed:
        values = headers.get(name, ())
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}")
    lines += ["", ";".join(signed), payload_hash]
    return "\n".join(lines)


def _key(secret: str, date: str, region: str, service: str) -> bytes:
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _check_date(amz_date: str, scope_date: str, now: datetime) -> None:
    try:
        when = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise error(
            "IncompleteSignature", "X-Amz-Date must look like 20240131T120000Z"
        ) from None
    if not amz_date.startswith(scope_date):
        raise error("SignatureDoesNotMatch", "the credential date is not X-Amz-Date")
    if abs((now - when).total_seconds()) > MAX_SKEW_SECONDS:
        raise error(
            "RequestExpired",
            f"the request was signed at {amz_date}, more than 15 minutes from the "
            f"server's time {now:%Y%m%dT%H%M%SZ}: check the client's clock",
        )


def _named(tokens: Sequence[Token], access_key: str) -> list[Token]:
    found = [t for t in tokens if t.name and t.name == access_key]
    if not found:
        raise error(
            "InvalidClientTokenId",
            f"no token is named {access_key!r}: the access key id is a token's "
            "name (#1, #2, ... for POSTROOM_TOKENS entries, in order)",
        )
    return found


def _payload_hash(headers: Mapping[str, Sequence[str]], body: bytes) -> str:
    # The body must be covered by the signature: UNSIGNED-PAYLOAD is refused.
    digest = hashlib.sha256(body).hexdigest()
    if (headers.get("x-amz-content-sha256") or [digest])[0] != digest:
        raise error("SignatureDoesNotMatch", "x-amz-content-sha256 is not the body's")
    return digest


def verify(
    tokens: Sequence[Token],
    *,
    method: str,
    raw_path: str,
    query: str,
    headers: Mapping[str, Sequence[str]],
    body: bytes,
    now: datetime | None = None,
) -> tuple[Token, Signed]:
    """The token that signed the request; raises an :class:`SqsError` otherwise.

    ``headers`` maps lower-case names to their values as received.
    """
    auth = headers.get("authorization")
    if not auth:
        raise error(
            "MissingAuthenticationToken",
            "this server needs signed requests: configure the SDK with a token's "
            "name as the access key id and the token as the secret access key",
        )
    signed = parse_authorization(auth[0])
    amz_date = (headers.get("x-amz-date") or [""])[0]
    _check_date(amz_date, signed.date, now or datetime.now(UTC))
    candidates = _named(tokens, signed.access_key)
    payload = _payload_hash(headers, body)
    request = canonical_request(
        method, raw_path, query, headers, signed.signed_headers, payload
    )
    scope = f"{signed.date}/{signed.region}/{signed.service}/aws4_request"
    to_sign = "\n".join(
        [ALGORITHM, amz_date, scope, hashlib.sha256(request.encode()).hexdigest()]
    )
    for token in candidates:
        key = _key(token.value, signed.date, signed.region, signed.service)
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, signed.signature):
            return token, signed
    raise error(
        "SignatureDoesNotMatch",
        "the request signature does not match: the secret access key must be "
        "the token whose name is the access key id",
    )
