"""Message groups, priorities and rate limits through the HTTP API."""

from __future__ import annotations

from typing import Any

import httpx


def _send(http: httpx.Client, queue: str, body: Any, **kw: Any) -> str:
    resp = http.post(f"/v1/queues/{queue}/messages", json={"body": body, **kw})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def _receive(http: httpx.Client, queue: str, n: int) -> list[dict[str, Any]]:
    resp = http.post(f"/v1/queues/{queue}/receive", json={"max_messages": n})
    assert resp.status_code == 200, resp.text
    messages: list[dict[str, Any]] = resp.json()["messages"]
    return messages


def test_send_takes_group_and_priority(http: httpx.Client, queue: str) -> None:
    low = _send(http, queue, "low")
    g1 = _send(http, queue, "g1", group="acct-1", priority=9)
    resp = http.post(
        f"/v1/queues/{queue}/messages:batch",
        json={"messages": [{"body": "g2"}, {"body": "g3"}], "group": "acct-1"},
    )
    assert resp.status_code == 201, resp.text
    got = _receive(http, queue, 10)
    assert [m["id"] for m in got] == [g1, low]  # g2, g3 wait behind g1
    assert (got[0]["group"], got[0]["priority"]) == ("acct-1", 9)
    assert (got[1]["group"], got[1]["priority"]) == (None, 0)


def test_bad_group_and_priority_are_refused(http: httpx.Client, queue: str) -> None:
    for extra in (
        {"group": ""},
        {"group": "a b"},
        {"priority": 10},
        {"priority": True},
    ):
        resp = http.post(f"/v1/queues/{queue}/messages", json={"body": 1, **extra})
        assert resp.status_code in (400, 422), resp.text
        assert next(iter(extra)) in resp.text
    assert http.get(f"/v1/queues/{queue}").status_code == 404


def test_declare_takes_a_rate_limit(http: httpx.Client, queue: str) -> None:
    resp = http.put(f"/v1/queues/{queue}", json={"rate_limit": 2.5})
    assert resp.status_code == 200, resp.text
    assert resp.json()["policy"]["rate_limit"] == 2.5
    assert http.get(f"/v1/queues/{queue}").json()["policy"]["rate_limit"] == 2.5
    for bad in (0, -1, 1e7, "5", True):
        resp = http.put(f"/v1/queues/{queue}", json={"rate_limit": bad})
        assert resp.status_code in (400, 422) and "rate_limit" in resp.text
    resp = http.put(f"/v1/queues/{queue}", json={})
    assert resp.json()["policy"]["rate_limit"] is None
