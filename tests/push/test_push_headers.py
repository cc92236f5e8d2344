"""The headers of one push (pure): CloudEvents binary mode, pass-through, signature."""

from __future__ import annotations

from datetime import UTC, datetime

from cloudevents.core.bindings.http import HTTPMessage, from_http_event

from postroom import Message, Subscription, verify_signature
from postroom.runtime.push import push_headers

AT = datetime(2026, 11, 26, 23, 0, 1, 250000, tzinfo=UTC)


def message(headers: dict[str, str], body: bytes = b"{}") -> Message:
    return Message(
        id="01JDX0000000000000000000AB",
        queue="orders.created:billing",
        body=body,
        headers=headers,
        enqueued_at=AT,
        available_at=AT,
        attempts=2,
    )


SUB = Subscription(
    topic="orders.created",
    name="billing",
    queue="orders.created:billing",
    push_endpoint="https://example.com/h",
    secret="s3cret",
)


def test_push_headers_are_cloudevents_binary_mode() -> None:
    msg = message(
        {"content-type": "application/json", "postroom-topic": "orders.created"}
    )
    headers = push_headers(SUB, msg, timestamp=1_800_000_000)
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-id"] == msg.id
    assert headers["ce-source"] == "postroom/orders.created"
    assert headers["ce-type"] == "orders.created"
    assert headers["ce-time"] == "2026-11-26T23:00:01.250Z"
    assert headers["content-type"] == "application/json"
    assert headers["postroom-attempt"] == "2"
    assert headers["postroom-subscription"] == "billing"
    assert headers["postroom-topic"] == "orders.created"
    event = from_http_event(HTTPMessage(headers=headers, body=msg.body))
    assert event.get_attributes()["time"] == AT
    assert verify_signature("s3cret", headers, msg.body, now=1_800_000_000)


def test_push_headers_pass_through_only_sensible_headers() -> None:
    msg = message(
        {
            "trace-id": "abc",
            "X-Tenant": "acme",
            "ce-type": "spoofed",
            "Host": "evil.example",
            "authorization": "Bearer leaked",
            "content-length": "99",
            "Postroom-Signature": "t=1,v1=forged",
            "bad header": "x",
            "x-newline": "a\r\nInjected: yes",
            "x-unicode": "café",
        }
    )
    headers = push_headers(SUB, msg, timestamp=1)
    assert headers["trace-id"] == "abc"
    assert headers["X-Tenant"] == "acme"
    assert headers["ce-type"] == "orders.created"
    lowered = {k.lower() for k in headers}
    for dropped in ("host", "authorization", "content-length", "bad header"):
        assert dropped not in lowered
    assert "x-newline" not in headers and "x-unicode" not in headers
    assert headers["Postroom-Signature"].startswith("t=1,v1=")
    assert "forged" not in headers["Postroom-Signature"]


def test_push_headers_default_content_type_and_no_secret() -> None:
    sub = Subscription(topic="a b%c", name="n", queue="a b%c:n")
    headers = push_headers(sub, message({}, body=b"\x00\x01"))
    assert headers["content-type"] == "application/octet-stream"
    assert headers["ce-source"] == "postroom/a%20b%25c"
    assert "Postroom-Signature" not in headers


def test_push_headers_never_carry_a_content_type_that_is_no_http_value() -> None:
    # a published header may hold CR LF; h11 refuses such a request outright, so
    # the event could never be delivered: it goes as bytes instead
    headers = push_headers(SUB, message({"content-type": "a\r\nX-Evil: 1"}))
    assert headers["content-type"] == "application/octet-stream"
    assert "X-Evil" not in headers
