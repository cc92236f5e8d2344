"""Careless and hostile arguments are refused the same way on every backend, with
an InvalidArgument (or SerializationError for a body) naming the argument and
the accepted range, before the backend is touched: nothing is left in flight
and no other queue changes (issue: "Messages stranded or lost", "Careless
input")."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import pytest

import postroom
from postroom import Client, InvalidArgument, SerializationError


def _deep(levels: int) -> Any:
    body: Any = []
    for _ in range(levels - 1):
        body = [body]
    return body


@pytest.fixture
def other(client: Client) -> str:
    """A queue with one message that no refused call may touch."""
    client.send("other", {"keep": 1})
    return "other"


def _untouched(client: Client, other: str) -> None:
    for name, st in client.stats().items():
        assert st.in_flight == 0, name
    st = client.stats(other)
    assert (st.ready, st.delayed, st.in_flight, st.dead) == (1, 0, 0, 0)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda c: c.peek("q", limit=-1), r"limit must be from 1 to 1,000,000, got -1"),
        (lambda c: c.peek("q", limit=0), "limit must be from 1"),
        (lambda c: c.dead_letters("q", limit=-1), "limit must be from 1"),
        (lambda c: c.redrive("q", limit=-1), "limit must be from 1"),
        (lambda c: c.redrive("q", rate=math.inf), "rate must be above 0"),
        (lambda c: c.redrive("q", ids=[1]), "ids must be message id strings"),
        (lambda c: c.dead_letters("q", reason="bored"), "reason must be one of"),
        (
            lambda c: c.declare_queue("q", max_attempts=10**12),
            "max_attempts must be from 1 to 1,000",
        ),
        (
            lambda c: c.create_subscription("t", "s", max_attempts=10**12),
            "max_attempts must be from 1 to 1,000",
        ),
        (lambda c: c.send("q\x00", 1), r"queue 'q\\x00' contains the control"),
        (lambda c: c.declare_queue("q\x00"), "control or format character"),
        (lambda c: c.create_subscription("t\x00", "s"), "topic"),
        (
            lambda c: c.send("q", 1, headers={"k": None}),
            r"headers\['k'\] must be a str",
        ),
        (
            lambda c: c.send("q", 1, headers={"k": b"v"}),
            r"headers\['k'\] must be a str",
        ),
        (lambda c: c.send("q", 1, headers=[("k", "v")]), "headers must be a mapping"),
        (
            lambda c: c.publish("t", 1, headers={"k": 1}),
            r"headers\['k'\] must be a str",
        ),
        (lambda c: c.send("q", 1, delay=math.inf), "delay must be between 0 and"),
        (lambda c: c.send("q", 1, delay=1e12), "delay must be between 0 and 1.2096e"),
        (lambda c: c.send("q", 1, delay=math.nan), "delay must be between"),
        (lambda c: c.send("q", 1, delay=-1), "delay must be between"),
        (lambda c: c.send_many("q", [1], delay=math.inf), "delay must be between"),
        (lambda c: c.receive("q", wait=math.nan), "wait must be between 0 and 300"),
        (lambda c: c.receive("q", visibility_timeout=1e12), "visibility_timeout"),
        (lambda c: c.receive("q", visibility_timeout=0), "visibility_timeout"),
        (lambda c: c.receive("q", max_messages=0), "max_messages must be from 1"),
        (
            lambda c: c.declare_queue("q", visibility_timeout=1e12),
            "visibility_timeout must be between 0.001 and 43200 seconds",
        ),
        (lambda c: c.declare_queue("q", visibility_timeout=0), "visibility_timeout"),
        (lambda c: c.declare_queue("q", dedup_window=math.nan), "dedup_window"),
        (
            lambda c: c.declare_queue("q", dedup_window=timedelta(days=15)),
            "dedup_window",
        ),
        (
            lambda c: c.declare_queue("q", backoff=postroom.Backoff(initial=math.nan)),
            "Backoff initial must be between 0 and",
        ),
        (lambda c: postroom.Backoff(max=math.inf), "Backoff max"),
        (lambda c: postroom.Backoff(factor=math.nan), "Backoff factor"),
        (lambda c: c.declare_queue("q", backoff={"initial": 1}), "postroom.Backoff"),
        (lambda c: c.send("q", 1, dedup_key="k\x00"), "dedup_key"),
        (lambda c: c.send("q", b"x" * (20 * 1024 * 1024)), "at most 262,144 bytes"),
        (lambda c: c.send("q", "x" * (256 * 1024)), "at most 262,144 bytes"),
        (lambda c: c.ack("receipt"), "delivery must be a postroom.Delivery"),
        (
            lambda c: c.create_subscription("orders:eu", "audit"),
            "topic 'orders:eu' contains ':'",
        ),
        (
            lambda c: c.create_subscription("orders", "eu:audit"),
            "name 'eu:audit' contains ':'",
        ),
    ],
)
def test_bad_argument_is_refused_and_changes_nothing(
    client: Client, other: str, call: Any, match: str
) -> None:
    client.send("q", {"n": 1})
    with pytest.raises(InvalidArgument, match=match):
        call(client)
    _untouched(client, other)
    assert client.stats("q").ready == 1


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (_deep(1000), "nest"),
        (_deep(101), "nests 101 levels deep: at most 100"),
        ({"v": math.nan}, "NaN or infinity"),
        ([math.inf], "NaN or infinity"),
        ("\ud800", "valid Unicode"),
        ({"k\udfff": 1}, "valid Unicode"),
    ],
)
def test_unencodable_body_is_refused_and_creates_nothing(
    client: Client, other: str, body: Any, match: str
) -> None:
    with pytest.raises(SerializationError, match=match):
        client.send("fresh", body)
    with pytest.raises(SerializationError, match=match):
        client.publish("topic", body)
    with pytest.raises(postroom.QueueNotFound):
        client.stats("fresh")  # refused before the queue was created
    _untouched(client, other)


def test_limits_at_their_edges_work(client: Client) -> None:
    client.declare_queue(
        "edge",
        max_attempts=1000,
        visibility_timeout=timedelta(hours=12),
        dedup_window=14 * 86400,
        backoff=postroom.Backoff(initial=0, factor=100, max=14 * 86400),
    )
    client.send("edge", _deep(100), delay=0, headers={"h": "v" * 1000})
    client.send("edge", b"z" * (256 * 1024))
    client.send("edge", 2, delay=14 * 86400)
    got = client.receive("edge", max_messages=10_000, wait=0)
    assert [d.message.json() for d in got[:1]] == [_deep(100)]
    assert len(got[1].body) == 256 * 1024
    longer = client.extend(got[0], 12 * 3600)
    client.ack_many([longer, got[1]])
    st = client.stats("edge")
    assert (st.ready, st.delayed, st.in_flight) == (0, 1, 0)
    assert len(client.peek("edge", limit=1_000_000)) <= 1  # a delayed one may show


def test_extend_out_of_range_keeps_the_lease(client: Client, other: str) -> None:
    client.send("q", 1)
    [d] = client.receive("q", visibility_timeout=30)
    for seconds in (1e12, math.inf, math.nan, 0, -1):
        with pytest.raises(InvalidArgument, match="seconds must be between"):
            client.extend(d, seconds)
    assert client.stats("q").in_flight == 1
    client.ack(d)  # the lease is still the one received
    _untouched(client, other)


def test_subscription_queues_of_different_pairs_never_collide(client: Client) -> None:
    a = client.create_subscription("orders.eu", "audit")
    b = client.create_subscription("orders", "eu.audit")
    assert a.queue != b.queue
    client.publish("orders.eu", {"n": 1})
    assert client.stats(a.queue).ready == 1 and client.stats(b.queue).ready == 0
    client.delete_subscription("orders.eu", "audit")
    assert [s.queue for s in client.subscriptions()] == [b.queue]
