"""Hostile request bodies get a 4xx before anything is stored or acked, and the
other messages of the queue are unaffected (issue 10)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

import postroom
from postroom.model.message import Message
from postroom.server._responses import AsciiJSONResponse, body_fields

from .conftest import Server

JSON = {"content-type": "application/json"}

POISON_BODIES = {
    "lone surrogate": '{"body": "\\ud800"}',
    "surrogate in a key": '{"body": {"k\\udfff": 1}}',
    "surrogate in a header": '{"body": 1, "headers": {"h": "a\\ud800"}}',
    "NaN": '{"body": {"v": NaN}}',
    "Infinity": '{"body": [Infinity]}',
    "-Infinity": '{"body": -Infinity}',
    "overflow to infinity": '{"body": 1e400}',
    "600-deep array": '{"body": ' + "[" * 600 + "]" * 600 + "}",
    "1,000-deep object": '{"body": ' + '{"a":' * 1000 + "1" + "}" * 1000 + "}",
    "100,000-deep array": '{"body": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "a 5,000-digit integer": '{"body": ' + "7" * 5000 + "}",
}


def _problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    doc: dict[str, Any] = resp.json()
    assert doc["status"] == status and doc["detail"]
    return doc


def _send(http: httpx.Client, queue: str, body: Any) -> str:
    resp = http.post(f"/v1/queues/{queue}/messages", json={"body": body})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _wrap(doc: str, path: str) -> str:
    """The poisoned ``{"body": ...}`` document as the request of ``path``."""
    if path.endswith(":batch"):
        return '{"messages": [{"body": 1}, ' + doc + "]}"
    return doc


@pytest.mark.parametrize("name", list(POISON_BODIES))
def test_poison_is_refused_and_the_queue_keeps_working(
    http: httpx.Client, queue: str, name: str
) -> None:
    good = [_send(http, queue, {"n": i}) for i in range(2)]
    for path in (
        f"/v1/queues/{queue}/messages",
        f"/v1/queues/{queue}/messages:batch",
        f"/v1/topics/{queue}.topic/publish",
    ):
        raw = _wrap(POISON_BODIES[name], path).encode()
        assert len(raw) < 256 * 1024
        _problem(http.post(path, content=raw, headers=JSON), 400)
    stats = http.get(f"/v1/queues/{queue}").json()
    assert (stats["ready"], stats["counters"]["sent"]) == (2, 2)  # nothing stored
    got = http.post(f"/v1/queues/{queue}/receive", json={"max_messages": 10}).json()
    assert [m["id"] for m in got["messages"]] == good
    first, second = got["messages"]
    http.post(f"/v1/queues/{queue}/reject", json={"receipt": first["receipt"]})
    ack = http.post(f"/v1/queues/{queue}/ack", json={"receipt": second["receipt"]})
    assert ack.status_code == 200
    dead = http.get(f"/v1/queues/{queue}/dead-letters").json()["dead_letters"]
    assert [d["id"] for d in dead] == [first["id"]]
    assert http.get(f"/ui/queues/{queue}").status_code == 200


def _forge(receipt: str, **changes: Any) -> str:
    data = json.loads(base64.urlsafe_b64decode(receipt + "=" * (-len(receipt) % 4)))
    data.update(changes)
    raw = json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "change",
    [
        {"t": -(10**400)},
        {"t": -(10**19)},
        {"t": 10**30},
        {"a": 10**30},
        {"a": -1},
        {"c": "\ud800"},
        {"q": ["not", "a", "string"]},
    ],
)
def test_forged_receipts_are_refused_before_the_ack(
    http: httpx.Client, queue: str, change: dict[str, Any]
) -> None:
    _send(http, queue, 1)
    [m] = http.post(f"/v1/queues/{queue}/receive", json={}).json()["messages"]
    for op in ("ack", "retry", "reject", "extend"):
        forged = {"receipt": _forge(m["receipt"], **change), "seconds": 5}
        if op != "extend":
            del forged["seconds"]
        _problem(http.post(f"/v1/queues/{queue}/{op}", json=forged), 400)
    forged_batch = {"receipts": [_forge(m["receipt"], **change)]}
    _problem(http.post(f"/v1/queues/{queue}/ack:batch", json=forged_batch), 400)
    assert http.get(f"/v1/queues/{queue}").json()["in_flight"] == 1  # not acked
    ok = http.post(f"/v1/queues/{queue}/ack", json={"receipt": m["receipt"]})
    assert ok.status_code == 200
    metrics = http.get("/metrics")
    assert metrics.status_code == 200
    count = f'postroom_handler_duration_seconds_count{{queue="{queue}"}} 1.0'
    assert count in metrics.text  # the real ack was timed, the forged ones not


def test_empty_bodies_are_refused_not_read_as_defaults(
    http: httpx.Client, queue: str
) -> None:
    policy = {"max_attempts": 3, "visibility_timeout": 12}
    assert http.put(f"/v1/queues/{queue}", json=policy).status_code == 200
    _send(http, queue, 1)
    [m] = http.post(f"/v1/queues/{queue}/receive", json={}).json()["messages"]
    http.post(f"/v1/queues/{queue}/reject", json={"receipt": m["receipt"]})

    doc = _problem(http.put(f"/v1/queues/{queue}"), 400)
    assert "needs a JSON request body" in doc["detail"]
    redrive = f"/v1/queues/{queue}/dead-letters:redrive"
    _problem(http.post(redrive), 400)
    _problem(http.post(redrive, content=b"  \n", headers=JSON), 400)
    doc = _problem(http.post(redrive, json={}), 422)
    assert '"all": true' in doc["detail"]
    _problem(http.post(redrive, json={"limit": 5}), 422)
    _problem(http.post(redrive, json={"ids": []}), 422)
    _problem(http.post(redrive, json={"ids": [m["id"]], "all": True}), 422)
    stats = http.get(f"/v1/queues/{queue}").json()
    assert (stats["policy"]["max_attempts"], stats["dead"]) == (3, 1)  # unchanged

    assert http.post(redrive, json={"all": True}).json()["ids"] == [m["id"]]
    reset = http.put(f"/v1/queues/{queue}", json={}).json()  # explicit: defaults
    assert (reset["policy"]["max_attempts"], reset["policy"]["visibility_timeout"]) == (
        5,
        30.0,
    )


def test_json_bodies_need_a_json_content_type(http: httpx.Client, queue: str) -> None:
    url = f"/v1/queues/{queue}/messages"
    raw = b'{"body": 1}'
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded"):
        headers = {"content-type": content_type} if content_type else {}
        doc = _problem(http.post(url, content=raw, headers=headers), 415)
        assert "Content-Type: application/json" in doc["detail"]
    for content_type in ("application/json; charset=utf-8", "application/cloud+json"):
        sent = http.post(url, content=raw, headers={"content-type": content_type})
        assert sent.status_code == 201, sent.text
    assert http.get(f"/v1/queues/{queue}").json()["ready"] == 2


@pytest.mark.parametrize(
    ("path", "doc"),
    [
        ("messages", {"body": 1, "delay": False}),
        ("messages", {"body": 1, "delay": "1"}),
        ("messages:batch", {"messages": [{"body": 1}], "delay": True}),
        ("receive", {"max_messages": True}),
        ("receive", {"max_messages": 1.5}),
        ("receive", {"wait": "0"}),
        ("", {"max_attempts": True}),
        ("", {"backoff": {"jitter": 1}}),
        ("dead-letters:redrive", {"all": 1}),
        ("dead-letters:redrive", {"all": True, "dry_run": "true"}),
    ],
)
def test_types_are_strict(
    http: httpx.Client, queue: str, path: str, doc: dict[str, Any]
) -> None:
    _send(http, queue, 1)
    url = f"/v1/queues/{queue}/{path}".rstrip("/")
    resp = http.put(url, json=doc) if not path else http.post(url, json=doc)
    _problem(resp, 422)
    stats = http.get(f"/v1/queues/{queue}").json()
    assert (stats["ready"], stats["policy"]["max_attempts"]) == (1, 5)


def test_stored_bodies_that_are_not_strict_json_come_back_as_base64() -> None:
    epoch = datetime(2026, 1, 1, tzinfo=UTC)
    for raw in (b'{"v": NaN}', b"[" * 200 + b"]" * 200, b'"\\ud800"'):
        message = Message("m", "q", raw, {}, epoch, epoch)
        assert body_fields(message) == {"body_base64": base64.b64encode(raw).decode()}
    rendered = AsciiJSONResponse({"header": "a\ud800"}).body
    assert rendered == b'{"header":"a\\ud800"}'


def test_refused_arguments_are_400_naming_the_argument(
    http: httpx.Client, queue: str
) -> None:
    doc = _problem(http.post("/v1/queues/has%20space/messages", json={"body": 1}), 400)
    assert doc["type"] == "urn:postroom:problem:invalid-argument"
    assert "queue 'has space' contains the whitespace" in doc["detail"]
    headers = {"x": "nul\u0000inside"}
    sent = http.post(
        f"/v1/queues/{queue}/messages", json={"body": 1, "headers": headers}
    )
    assert "headers" in _problem(sent, 400)["detail"]
    assert http.get(f"/v1/queues/{queue}").status_code == 404  # nothing stored


def test_poison_stored_through_another_path_never_breaks_reads(
    server: Server, http: httpx.Client, queue: str
) -> None:
    """A body that is not strict JSON, stored with the Python API (bytes are
    opaque there), comes back as base64: receives, dead letters and the
    dashboard keep working for the queue's other messages."""
    poison = b'{"v": NaN, "s": "\\ud800"}'
    with postroom.Client(server.url) as client:
        bad = client.send(queue, poison, headers={"content-type": "application/json"})
    good = _send(http, queue, {"n": 1})
    got = http.post(f"/v1/queues/{queue}/receive", json={"max_messages": 10}).json()
    by_id = {m["id"]: m for m in got["messages"]}
    assert set(by_id) == {bad, good}
    assert base64.b64decode(by_id[bad]["body_base64"]) == poison
    assert by_id[good]["body"] == {"n": 1}
    for m in got["messages"]:
        http.post(f"/v1/queues/{queue}/reject", json={"receipt": m["receipt"]})
    dead = http.get(f"/v1/queues/{queue}/dead-letters").json()["dead_letters"]
    assert {d["id"] for d in dead} == {bad, good}
    assert http.get(f"/ui/queues/{queue}").status_code == 200
    page = http.get(f"/ui/queues/{queue}/dead/{bad}")
    assert page.status_code == 200 and "NaN" in page.text


@pytest.mark.parametrize(
    "path", ["/ui/queues/%00", "/ui/queues/a%20b", "/ui/queues/q/dead/%00"]
)
def test_dashboard_pages_answer_a_bad_name_with_400(
    http: httpx.Client, path: str
) -> None:
    resp = http.get(path)
    assert resp.status_code == 400, resp.text
    assert "contains" in resp.json()["detail"]


def test_dashboard_delete_of_an_unknown_subscription_is_404(
    server: Server, http: httpx.Client
) -> None:
    resp = http.post(
        "/ui/topics/t/subscriptions/nope/delete", headers={"origin": server.base}
    )
    assert resp.status_code == 404, resp.text
    assert "subscription 'nope' of topic 't' does not exist" in resp.json()["detail"]
