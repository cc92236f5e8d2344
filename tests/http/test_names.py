"""Queue and topic names with ``/`` and other characters URLs encode, over HTTP."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from .conftest import RECEIVER, Server


def _path(name: str) -> str:
    return quote(name, safe="")


def test_a_queue_named_with_slashes_is_reached_through_every_endpoint(
    http: httpx.Client, queue: str
) -> None:
    name = f"{queue}/images/?#%2F/é"
    other = f"{queue}/images"  # the name's first segments: must stay untouched
    q = f"/v1/queues/{_path(name)}"
    sent = http.post(f"{q}/messages", json={"body": {"n": 1}})
    assert sent.status_code == 201, sent.text
    second = http.post(f"/v1/queues/{_path(other)}/messages", json={"body": 2})
    assert second.status_code == 201
    [m] = http.post(f"{q}/receive", json={}).json()["messages"]
    assert m["id"] == sent.json()["id"] and m["queue"] == name
    ack = http.post(f"{q}/ack", json={"receipt": m["receipt"], "id": m["id"]})
    assert ack.json() == {"ok": True}
    stats = http.get(q).json()
    assert stats["counters"]["acked"] == 1
    assert http.get(f"/v1/queues/{_path(other)}").json()["ready"] == 1
    assert http.get(f"{q}/dead-letters").status_code == 200
    page = http.get(f"/ui/queues/{_path(name)}")
    assert page.status_code == 200 and "images" in page.text


def test_a_topic_named_with_slashes_publishes(http: httpx.Client, queue: str) -> None:
    topic = f"{queue}/events"
    t = f"/v1/topics/{_path(topic)}"
    made = http.post(f"{t}/subscriptions", json={"name": "audit"})
    assert made.status_code in (200, 201), made.text
    published = http.post(f"{t}/publish", json={"body": "hello"})
    assert published.status_code in (200, 201), published.text
    sub_queue = made.json()["queue"]
    got = http.post(f"/v1/queues/{_path(sub_queue)}/receive", json={}).json()
    assert [m["body"] for m in got["messages"]] == ["hello"]


def test_a_token_reaches_a_slashed_name_only_through_its_patterns(
    secured: Server,
) -> None:
    with secured.client(RECEIVER) as http:
        covered = http.post(f"/v1/queues/{_path('orders.a/b')}/receive", json={})
        assert covered.status_code in (200, 404), covered.text
        # "emails/x" is not "emails": the slash does not end the pattern's match
        beyond = http.post(f"/v1/queues/{_path('emails/x')}/receive", json={})
        assert beyond.status_code == 403, beyond.text
