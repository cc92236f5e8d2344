"""Webhook signing and endpoint validation (pure functions)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

import postroom
from postroom.model.signing import (
    SIGNATURE_HEADER,
    parse_signature_header,
    sign,
    signature_header,
    validate_endpoint,
    verify_signature,
)

SECRET = "whsec_test"
BODY = b'{"image": "cat.png"}'
T = 1_700_000_000


def test_sign_is_hmac_sha256_of_timestamp_dot_body() -> None:
    expected = hmac.new(
        SECRET.encode(), b"1700000000." + BODY, hashlib.sha256
    ).hexdigest()
    assert sign(SECRET, T, BODY) == expected
    assert signature_header(SECRET, BODY, T) == f"t={T},v1={expected}"


def test_signature_header_defaults_to_now() -> None:
    timestamp, [digest] = parse_signature_header(signature_header(SECRET, BODY))
    assert timestamp is not None
    assert verify_signature(
        SECRET, {SIGNATURE_HEADER: f"t={timestamp},v1={digest}"}, BODY
    )


def test_verify_accepts_a_valid_signature_with_any_header_case() -> None:
    value = signature_header(SECRET, BODY, T)
    for name in ("Postroom-Signature", "postroom-signature", "POSTROOM-SIGNATURE"):
        assert verify_signature(SECRET, {name: value}, BODY, now=T + 10)
    assert verify_signature(
        SECRET, [("x", "y"), (SIGNATURE_HEADER, value)], BODY, now=T
    )
    assert postroom.verify_signature is verify_signature


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        ("wrong", BODY, T),
        (SECRET, BODY + b" ", T),
        (SECRET, b"", T),
        (SECRET, BODY, T + 301),
        (SECRET, BODY, T - 301),
    ],
)
def test_verify_refuses_wrong_secret_body_or_stale_time(
    secret: str, body: bytes, now: float
) -> None:
    headers = {SIGNATURE_HEADER: signature_header(SECRET, BODY, T)}
    assert not verify_signature(secret, headers, body, now=now)


def test_verify_tolerance_is_configurable() -> None:
    headers = {SIGNATURE_HEADER: signature_header(SECRET, BODY, T)}
    assert verify_signature(SECRET, headers, BODY, now=T + 3600, tolerance=3600)
    assert not verify_signature(SECRET, headers, BODY, now=T + 3601, tolerance=3600)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        f"v1={sign(SECRET, T, BODY)}",  # no timestamp
        f"t={T}",  # no signature
        f"t=abc,v1={sign(SECRET, T, BODY)}",
        f"t={T},v0={sign(SECRET, T, BODY)}",  # unknown scheme only
        f"t={T + 1},v1={sign(SECRET, T, BODY)}",  # timestamp is signed too
    ],
)
def test_verify_refuses_malformed_headers(value: str) -> None:
    assert not verify_signature(SECRET, {SIGNATURE_HEADER: value}, BODY, now=T)


def test_verify_without_the_header_is_false() -> None:
    assert not verify_signature(SECRET, {"content-type": "x"}, BODY, now=T)


def test_verify_accepts_any_of_several_v1_signatures() -> None:
    good = sign(SECRET, T, BODY)
    value = f"t={T}, v1={sign('old-secret', T, BODY)}, v1={good}"
    assert parse_signature_header(value) == (T, [sign("old-secret", T, BODY), good])
    assert verify_signature(SECRET, {SIGNATURE_HEADER: value}, BODY, now=T)
    assert verify_signature("old-secret", {SIGNATURE_HEADER: value}, BODY, now=T)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "https://example.com/hooks/postroom?token=a",
        "HTTPS://EXAMPLE.COM/x",
        "http://[::1]:9000/",
    ],
)
def test_validate_endpoint_accepts_http_and_https(url: str) -> None:
    assert validate_endpoint(url) == url


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://example.com/x", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("example.com/hook", "http:// or https://"),
        ("http://", "no host"),
        ("https:///path", "no host"),
        ("http://example.com:99999/", "not a valid URL"),
        ("http://[::1/", "not a valid URL"),
        ("http://exa mple.com/", "whitespace"),
        ("http://example.com/\r\nX: y", "whitespace"),
        ("", "non-empty"),
    ],
)
def test_validate_endpoint_refuses_other_urls(url: str, why: str) -> None:
    with pytest.raises(postroom.ConfigurationError, match=why):
        validate_endpoint(url)


def test_documented_test_vector() -> None:
    # docs/push.md gives this header as a test vector for other languages
    assert sign("whsec_example", 1764198001, b'{"image":"cat.png"}') == (
        "4322208b638628a2e795b2c5bcd3f733efd988b838969b96246e2f4dcae1bbd2"
    )


NOW = 1_764_198_001


@pytest.mark.parametrize(
    "value",
    [
        f"t={NOW},v1=\u00e9\u00e9",  # non-ASCII digest (headers decode as Latin-1)
        f"t={NOW},v1=\ud800",  # a lone surrogate
        f"t={10**400},v1=ab",  # a timestamp no float holds
        f"t=-{10**400},v1=ab",
    ],
)
def test_verify_signature_refuses_a_hostile_header(value: str) -> None:
    headers = {"Postroom-Signature": value}
    assert postroom.verify_signature("s", headers, b"x", now=NOW) is False


@given(st.text(max_size=200))
def test_verify_signature_answers_false_for_any_header_text(value: str) -> None:
    headers = {"Postroom-Signature": f"t={NOW},v1={value}"}
    assert postroom.verify_signature("s", headers, b"x", now=NOW) is False
    assert postroom.verify_signature("s", {"Postroom-Signature": value}, b"x") is False
