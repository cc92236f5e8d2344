"""The SQS endpoint's Signature V4 check against AWS's published test vector
(aws-sig-v4-test-suite, "get-vanilla"), and its refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from postroom.server._auth import Token
from postroom.server.sqs._errors import SqsError
from postroom.server.sqs._sigv4 import verify

SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = Token(SECRET, frozenset({"admin"}), name="AKIDEXAMPLE")
WHEN = datetime(2015, 8, 30, 12, 36, tzinfo=UTC)
AUTH = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
    "aws4_request, SignedHeaders=host;x-amz-date, Signature="
    "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
)


def _verify(auth: str = AUTH, when: datetime = WHEN, body: bytes = b"") -> Token:
    headers = {
        "host": ["example.amazonaws.com"],
        "x-amz-date": ["20150830T123600Z"],
        "authorization": [auth],
    }
    token, _ = verify(
        [TOKEN], method="GET", raw_path="/", query="", headers=headers,
        body=body, now=when,
    )  # fmt: skip
    return token


def test_sigv4_accepts_the_published_example() -> None:
    assert _verify() is TOKEN


@pytest.mark.parametrize(
    ("auth", "when", "body", "code"),
    [
        (AUTH[:-1] + "0", WHEN, b"", "SignatureDoesNotMatch"),
        (AUTH, WHEN, b"x", "SignatureDoesNotMatch"),
        (AUTH.replace("AKIDEXAMPLE", "OTHER"), WHEN, b"", "InvalidClientTokenId"),
        (AUTH, datetime(2015, 8, 30, 13, 0, tzinfo=UTC), b"", "RequestExpired"),
        ("AWS4-HMAC-SHA256 Credential=x", WHEN, b"", "IncompleteSignature"),
        ("Basic abc", WHEN, b"", "IncompleteSignature"),
    ],
)
def test_sigv4_refuses(auth: str, when: datetime, body: bytes, code: str) -> None:
    with pytest.raises(SqsError) as info:
        _verify(auth, when, body)
    assert info.value.kind.shape == code


def test_sigv4_needs_the_token_name_not_the_token() -> None:
    with pytest.raises(SqsError) as info:
        _verify(AUTH.replace("AKIDEXAMPLE", SECRET.replace("/", "_")))
    assert info.value.kind.shape == "InvalidClientTokenId"
