"""Every endpoint of the HTTP API, through a real server process."""

from __future__ import annotations

import base64
import threading
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from postroom.server import HttpReceipt

from .conftest import Server


def _problem(resp: httpx.Response, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    doc: dict[str, Any] = resp.json()
    assert doc["status"] == status
    assert doc["title"] and doc["type"] and doc["detail"]
    return doc


def _send(http: httpx.Client, queue: str, body: Any = None, **kw: Any) -> str:
    resp = http.post(f"/v1/queues/{queue}/messages", json={"body": body, **kw})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _receive(http: httpx.Client, queue: str, **kw: Any) -> list[dict[str, Any]]:
    resp = http.post(f"/v1/queues/{queue}/receive", json=kw)
    assert resp.status_code == 200, resp.text
    messages: list[dict[str, Any]] = resp.json()["messages"]
    return messages


def test_send_receive_ack_roundtrip(http: httpx.Client, queue: str) -> None:
    mid = _send(http, queue, {"image": "cat.png"}, headers={"trace": "abc"})
    [m] = _receive(http, queue)
    assert m["id"] == mid
    assert m["body"] == {"image": "cat.png"}
    assert m["headers"]["trace"] == "abc"
    assert m["attempts"] == 1
    assert _receive(http, queue) == []  # leased: invisible to others
    ack = {"receipt": m["receipt"], "id": mid}
    assert http.post(f"/v1/queues/{queue}/ack", json=ack).json() == {"ok": True}
    stats = http.get(f"/v1/queues/{queue}").json()
    assert (stats["ready"], stats["in_flight"]) == (0, 0)
    assert stats["counters"]["sent"] == 1
    assert stats["counters"]["acked"] == 1
    _problem(http.post(f"/v1/queues/{queue}/ack", json=ack), 409)


def test_send_bytes_roundtrip_as_base64(http: httpx.Client, queue: str) -> None:
    raw = bytes(range(256))
    resp = http.post(
        f"/v1/queues/{queue}/messages",
        json={"body_base64": base64.b64encode(raw).decode()},
    )
    assert resp.status_code == 201
    [m] = _receive(http, queue)
    assert base64.b64decode(m["body_base64"]) == raw
    assert m["headers"]["content-type"] == "application/octet-stream"


def test_send_dedup_key_returns_first_id(http: httpx.Client, queue: str) -> None:
    first = _send(http, queue, 1, dedup_key="k1")
    assert _send(http, queue, 2, dedup_key="k1") == first
    assert http.get(f"/v1/queues/{queue}").json()["ready"] == 1


def test_send_delay_hides_message(http: httpx.Client, queue: str) -> None:
    _send(http, queue, "later", delay=60)
    assert _receive(http, queue) == []
    assert http.get(f"/v1/queues/{queue}").json()["delayed"] == 1


def test_send_batch_returns_ids_in_order(http: httpx.Client, queue: str) -> None:
    resp = http.post(
        f"/v1/queues/{queue}/messages:batch",
        json={"messages": [{"body": i} for i in range(5)], "headers": {"h": "v"}},
    )
    assert resp.status_code == 201
    ids = resp.json()["ids"]
    got = _receive(http, queue, max_messages=10)
    assert [m["id"] for m in got] == ids
    assert [m["body"] for m in got] == list(range(5))


def test_send_batch_over_limit_is_413(http: httpx.Client, queue: str) -> None:
    body = {"messages": [{"body": i} for i in range(101)]}
    _problem(http.post(f"/v1/queues/{queue}/messages:batch", json=body), 413)


def test_retry_makes_message_visible_again(http: httpx.Client, queue: str) -> None:
    _send(http, queue, "x")
    [m] = _receive(http, queue)
    resp = http.post(
        f"/v1/queues/{queue}/retry",
        json={"receipt": m["receipt"], "delay": 0, "error": "flaky"},
    )
    assert resp.status_code == 200
    [again] = _receive(http, queue)
    assert again["id"] == m["id"]
    assert again["attempts"] == 2


def test_retry_on_last_attempt_dead_letters(http: httpx.Client, queue: str) -> None:
    assert http.put(f"/v1/queues/{queue}", json={"max_attempts": 1}).status_code == 200
    _send(http, queue, "x")
    [m] = _receive(http, queue)
    http.post(f"/v1/queues/{queue}/retry", json={"receipt": m["receipt"], "delay": 0})
    [dl] = http.get(f"/v1/queues/{queue}/dead-letters").json()["dead_letters"]
    assert dl["reason"] == "failed"


def test_reject_dead_letter_show_filter_redrive_purge(
    http: httpx.Client, queue: str
) -> None:
    for body in ("poison", "bad"):
        _send(http, queue, body)
    got = _receive(http, queue, max_messages=2)
    tb = 'Traceback (most recent call last):\n  File "w.py"\nValueError: poison'
    error = {"type": "ValueError", "message": "poison pill", "traceback": tb}
    http.post(
        f"/v1/queues/{queue}/reject",
        json={"receipt": got[0]["receipt"], "error": error},
    )
    http.post(f"/v1/queues/{queue}/reject", json={"receipt": got[1]["receipt"]})
    dead = f"/v1/queues/{queue}/dead-letters"
    assert len(http.get(dead).json()["dead_letters"]) == 2
    [dl] = http.get(dead, params={"error_contains": "poison pill"}).json()[
        "dead_letters"
    ]
    assert dl["id"] == got[0]["id"]
    assert dl["reason"] == "rejected"
    shown = http.get(f"{dead}/{dl['id']}").json()
    assert shown["error"]["traceback"] == tb
    assert shown["message"]["body"] == "poison"
    assert [h["outcome"] for h in shown["history"]] == ["rejected"]
    _problem(http.get(f"{dead}/nope"), 404)
    dry = http.post(f"{dead}:redrive", json={"ids": [dl["id"]], "dry_run": True})
    assert dry.json() == {"ids": [dl["id"]], "count": 1, "dry_run": True}
    moved = http.post(f"{dead}:redrive", json={"ids": [dl["id"]]}).json()
    assert moved["ids"] == [dl["id"]]
    [back] = _receive(http, queue)
    assert (back["id"], back["attempts"], back["redrives"]) == (dl["id"], 1, 1)
    assert http.delete(dead).json() == {"purged": 1}
    assert http.get(dead).json()["dead_letters"] == []


def test_dead_letters_reason_filter_validated(http: httpx.Client, queue: str) -> None:
    _send(http, queue, 1)
    dead = f"/v1/queues/{queue}/dead-letters"
    assert http.get(dead, params={"reason": "rejected"}).json()["dead_letters"] == []
    _problem(http.get(dead, params={"reason": "bogus"}), 422)
    _problem(http.get(dead, params={"limit": "0"}), 422)


def test_extend_lengthens_lease(http: httpx.Client, queue: str) -> None:
    _send(http, queue, "x")
    [m] = _receive(http, queue, visibility_timeout=5)
    resp = http.post(
        f"/v1/queues/{queue}/extend", json={"receipt": m["receipt"], "seconds": 600}
    )
    assert resp.status_code == 200
    new = datetime.fromisoformat(resp.json()["lease_expires_at"])
    assert new > datetime.fromisoformat(m["lease_expires_at"])
    ack = http.post(f"/v1/queues/{queue}/ack", json={"receipt": resp.json()["receipt"]})
    assert ack.status_code == 200


def test_receive_long_poll_is_woken_by_send(http: httpx.Client, queue: str) -> None:
    _send(http, queue, "warm-up")
    [m] = _receive(http, queue)
    http.post(f"/v1/queues/{queue}/ack", json={"receipt": m["receipt"]})
    result: list[httpx.Response] = []
    poller = threading.Thread(
        target=lambda: result.append(
            http.post(f"/v1/queues/{queue}/receive", json={"wait": 15})
        )
    )
    started = time.monotonic()
    poller.start()
    time.sleep(0.5)
    assert not result  # still waiting: the queue is empty
    mid = _send(http, queue, "wake")
    poller.join(20)
    assert [m["id"] for m in result[0].json()["messages"]] == [mid]
    assert time.monotonic() - started < 15  # woken, not timed out


def test_abandoned_long_poll_leases_nothing(
    server: Server, http: httpx.Client, queue: str
) -> None:
    _send(http, queue, "warm-up")
    [m] = _receive(http, queue)
    http.post(f"/v1/queues/{queue}/ack", json={"receipt": m["receipt"]})
    impatient = httpx.Client(base_url=server.base, timeout=0.5)
    with impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post(f"/v1/queues/{queue}/receive", json={"wait": 15})
    time.sleep(0.5)  # the server sees the connection close
    _send(http, queue, "after")
    time.sleep(0.5)  # an abandoned poll would lease it now
    stats = http.get(f"/v1/queues/{queue}").json()
    assert (stats["ready"], stats["in_flight"]) == (1, 0)


def test_receive_limits_are_422(http: httpx.Client, queue: str) -> None:
    _send(http, queue, 1)
    url = f"/v1/queues/{queue}/receive"
    _problem(http.post(url, json={"wait": 21}), 422)
    _problem(http.post(url, json={"max_messages": 0}), 422)
    _problem(http.post(url, json={"max_messages": 101}), 422)
    _problem(http.post(url, json={"visibility_timeout": -1}), 422)
    _problem(http.post(url, json={"unknown": 1}), 422)


def test_unknown_queue_is_404(http: httpx.Client, queue: str) -> None:
    for method, path in [
        ("POST", "/receive"),
        ("GET", ""),
        ("GET", "/dead-letters"),
        ("DELETE", "/messages"),
        ("DELETE", "/dead-letters"),
        ("POST", "/dead-letters:redrive"),
    ]:
        body = {"all": True} if path.endswith("redrive") else {}
        resp = http.request(method, f"/v1/queues/{queue}{path}", json=body)
        assert "does not exist" in _problem(resp, 404)["detail"]
    long_poll = http.post(f"/v1/queues/{queue}/receive", json={"wait": 1})
    assert "does not exist" in _problem(long_poll, 404)["detail"]


def test_malformed_requests_are_4xx(http: httpx.Client, queue: str) -> None:
    url = f"/v1/queues/{queue}/messages"
    as_json = {"content-type": "application/json"}
    _problem(http.post(url, content=b"{not json", headers=as_json), 400)
    _problem(http.post(url, content=b"\xff\xfe", headers=as_json), 400)
    _problem(http.post(url, json=[1, 2]), 422)
    _problem(http.post(url, json={}), 422)  # no body at all
    _problem(http.post(url, json={"body": 1, "body_base64": "AA=="}), 422)
    _problem(http.post(url, json={"body_base64": "not base64!"}), 422)
    _problem(http.post(url, json={"body": 1, "headers": {"a": 1}}), 422)
    _problem(http.post(url, json={"body": 1, "delay": -1}), 422)
    _problem(http.post("/v1/queues/has%20space/messages", json={"body": 1}), 400)


def test_body_over_limit_is_413(http: httpx.Client, queue: str) -> None:
    big = {"body": "x" * (256 * 1024)}
    doc = _problem(http.post(f"/v1/queues/{queue}/messages", json=big), 413)
    assert "larger than 262144 bytes" in doc["detail"]

    def chunks() -> Any:
        for _ in range(300):
            yield b"x" * 1024

    resp = http.post(f"/v1/queues/{queue}/messages", content=chunks())
    _problem(resp, 413)


def test_bad_receipts_are_400(http: httpx.Client, queue: str) -> None:
    _send(http, queue, 1)
    [m] = _receive(http, queue)
    ack = f"/v1/queues/{queue}/ack"
    _problem(http.post(ack, json={"receipt": "garbage"}), 400)
    _problem(http.post(ack, json={"receipt": m["receipt"], "id": "other"}), 400)
    other = HttpReceipt.decode(m["receipt"])
    forged = HttpReceipt("elsewhere", other.message_id, other.receipt, 1, "", 0)
    _problem(http.post(ack, json={"receipt": forged.encode()}), 400)


def test_declare_queue_and_purge(http: httpx.Client, queue: str) -> None:
    policy = {"max_attempts": 3, "visibility_timeout": 10, "backoff": {"initial": 2}}
    resp = http.put(f"/v1/queues/{queue}", json=policy)
    assert resp.status_code == 200
    got = http.get(f"/v1/queues/{queue}").json()["policy"]
    assert (got["max_attempts"], got["visibility_timeout"]) == (3, 10)
    assert got["backoff"]["initial"] == 2
    assert got["dead_letter"] == f"{queue}.dead"
    for i in range(3):
        _send(http, queue, i)
    assert http.delete(f"/v1/queues/{queue}/messages").json() == {"purged": 3}
    names = [q["queue"] for q in http.get("/v1/queues").json()["queues"]]
    assert queue in names


def test_topics_publish_and_subscriptions(http: httpx.Client, queue: str) -> None:
    topic = f"{queue}.events"
    subs = f"/v1/topics/{topic}/subscriptions"
    created = http.post(subs, json={"name": "audit", "filter": {"kind": "a"}})
    assert created.status_code == 201
    sub = created.json()
    assert sub["queue"] == f"{topic}:audit"
    hook = {"name": "hook", "push_endpoint": "https://hooks.example.com/hook"}
    assert http.post(subs, json=hook).json()["secret"]
    listed = http.get("/v1/subscriptions", params={"topic": topic}).json()
    assert [s["name"] for s in listed["subscriptions"]] == ["audit", "hook"]
    assert all(s["secret"] is None for s in listed["subscriptions"])
    pub = http.post(
        f"/v1/topics/{topic}/publish", json={"body": 1, "headers": {"kind": "a"}}
    )
    assert pub.status_code == 201
    [m] = _receive(http, sub["queue"])
    assert (m["id"], m["body"]) == (pub.json()["id"], 1)
    topics = {t["topic"]: t for t in http.get("/v1/topics").json()["topics"]}
    assert topics[topic]["published"] == 1
    assert topics[topic]["subscriptions"] == 2
    _problem(http.post(subs, json={"name": "x", "push_endpoint": "ftp://h"}), 400)
    assert http.delete(f"{subs}/audit").json() == {"ok": True}
    _problem(http.delete(f"{subs}/audit"), 404)


def test_metrics_report_depths_counters_and_durations(
    http: httpx.Client, queue: str
) -> None:
    _send(http, queue, 1)
    _send(http, queue, 2)
    [m] = _receive(http, queue)
    http.post(f"/v1/queues/{queue}/ack", json={"receipt": m["receipt"]})
    text = http.get("/metrics").text
    assert f'postroom_queue_depth{{queue="{queue}",state="ready"}} 1.0' in text
    assert f'postroom_messages_sent_total{{queue="{queue}"}} 2.0' in text
    assert f'postroom_messages_acked_total{{queue="{queue}"}} 1.0' in text
    assert f'postroom_queue_oldest_age_seconds{{queue="{queue}"}}' in text
    count = f'postroom_handler_duration_seconds_count{{queue="{queue}"}} 1.0'
    assert count in text


def test_meta_endpoints(http: httpx.Client) -> None:
    assert http.get("/healthz").json() == {"status": "ok", "backend": "sqlite"}
    doc = http.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert "/v1/queues/{queue}/receive" in doc["paths"]
    docs = http.get("/docs")
    assert docs.status_code == 200
    assert "/v1/queues/{queue}/messages:batch" in docs.text
    assert "://" not in docs.text.split("<main>")[0]  # no CDN: nothing from outside
    _problem(http.get("/no/such/path"), 404)
    _problem(http.delete("/healthz"), 405)
    assert http.head("/v1/queues").status_code == 200


def test_ack_batch_reports_lost_leases(http: httpx.Client, queue: str) -> None:
    for i in range(3):
        _send(http, queue, i)
    got = _receive(http, queue, max_messages=3)
    first = {"receipts": [got[0]["receipt"]]}
    assert http.post(f"/v1/queues/{queue}/ack:batch", json=first).json()["acked"] == 1
    every = {"receipts": [m["receipt"] for m in got]}
    resp = http.post(f"/v1/queues/{queue}/ack:batch", json=every).json()
    assert resp == {"acked": 2, "lost": [got[0]["id"]]}
    assert http.get(f"/v1/queues/{queue}").json()["in_flight"] == 0
    _problem(http.post(f"/v1/queues/{queue}/ack:batch", json={"receipts": []}), 422)
    many = {"receipts": [got[1]["receipt"]] * 101}
    _problem(http.post(f"/v1/queues/{queue}/ack:batch", json=many), 413)


def test_dashboard_pages_escape_message_content(http: httpx.Client, queue: str) -> None:
    _send(http, queue, "<script>alert(1)</script>", headers={"x": "<b>h</b>"})
    [m] = _receive(http, queue)
    error = {"type": "E", "message": "<img src=x onerror=alert(2)>"}
    http.post(
        f"/v1/queues/{queue}/reject", json={"receipt": m["receipt"], "error": error}
    )
    for path in (f"/ui/queues/{queue}", f"/ui/queues/{queue}/dead/{m['id']}"):
        page = http.get(path)
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text
        assert "&lt;img src=x onerror=alert(2)&gt;" in page.text
    assert "&lt;b&gt;h&lt;/b&gt;" in http.get(f"/ui/queues/{queue}/dead/{m['id']}").text
    assert http.get("/ui/queues/nope").status_code == 404
    assert http.get(f"/ui/queues/{queue}/dead/nope").status_code == 404
    assert http.get(f"/ui/queues/{queue}?reason=bogus").status_code == 400


def test_delete_queue_removes_it(http: httpx.Client, queue: str) -> None:
    _send(http, queue, "x")
    assert http.delete(f"/v1/queues/{queue}").json() == {"ok": True}
    assert http.get(f"/v1/queues/{queue}").status_code == 404
    assert http.delete(f"/v1/queues/{queue}").status_code == 404


def test_docs_page_shows_code_not_restructuredtext(http: httpx.Client) -> None:
    page = http.get("/docs").text
    assert "``" not in page and ":meth:" not in page
    assert "Lease up to <code>max_messages</code>" in page
    doc = http.get("/openapi.json").json()
    summaries = [op["summary"] for ops in doc["paths"].values() for op in ops.values()]
    assert not [s for s in summaries if "``" in s]
    assert any(s.endswith("`dry_run`.") or "`ids`" in s for s in summaries)
