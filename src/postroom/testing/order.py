"""FIFO message groups, priorities and rate limits (SPEC §9, "Time and order").

Every test runs on every backend. On a backend whose :class:`Capabilities` lack
the feature (``groups``, ``priorities``, ``rate_limits``) it checks the refusal
instead: :class:`postroom.NotSupported` naming the argument, and nothing stored.
The rules are in :mod:`postroom.model.order` and ``docs/scheduling.md``. The rate
limit held by two worker processes is in :mod:`postroom.testing.rate`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import postroom
from postroom import Client
from postroom.testing.rate import test_rate_limit_is_held_by_two_worker_processes
from postroom.testing.workers import running, settled, wait_until

__all__ = [
    "test_group_and_priority_are_kept_through_retries_and_redrive",
    "test_group_head_retrying_or_dead_blocks_only_its_group",
    "test_groups_deliver_in_order_to_concurrent_workers_with_retries",
    "test_groups_deliver_one_at_a_time_in_send_order",
    "test_many_groups_are_in_flight_at_once",
    "test_order_arguments_are_refused_before_anything_is_stored",
    "test_priority_orders_group_heads_and_send_order_wins_in_a_group",
    "test_priority_sends_highest_first_and_keeps_order_of_equals",
    "test_rate_limit_holds_back_claims_and_says_when_to_come_back",
    "test_rate_limit_is_held_by_two_worker_processes",
    "test_rate_limit_is_stored_with_the_queue_policy",
    "test_typed_send_passes_group_and_priority",
]

NO_BACKOFF = postroom.Backoff(initial=0.0, jitter=False)


def refused(client: Client, feature: str) -> bool:
    """Whether the backend lacks ``feature`` (a :class:`Capabilities` flag)."""
    return not getattr(client.aclient.capabilities, feature)


def assert_refused(client: Client, arg: str, call: Callable[[], Any]) -> None:
    """``call`` raises NotSupported naming ``arg`` and creates no queue."""
    before = client.queues()
    with pytest.raises(postroom.NotSupported, match=arg):
        call()
    assert client.queues() == before


def ids_of(deliveries: list[postroom.Delivery]) -> list[str]:
    return [d.id for d in deliveries]


def test_order_arguments_are_refused_before_anything_is_stored(
    client: Client,
) -> None:
    bad_sends: list[dict[str, Any]] = [
        {"group": ""},
        {"group": "has space"},
        {"group": 42},
        {"group": "x" * 201},
        {"priority": 10},
        {"priority": -1},
        {"priority": True},
        {"priority": 1.5},
        {"priority": "9"},
    ]
    for options in bad_sends:
        arg = next(iter(options))
        with pytest.raises(postroom.InvalidArgument, match=arg):
            client.send("q", "x", **options)
        with pytest.raises(postroom.InvalidArgument, match=arg):
            client.send_many("q", ["x"], **options)
    limits: list[Any] = [0, -1.0, float("nan"), float("inf"), True, "5", 1e7]
    for limit in [*limits, timedelta(seconds=1)]:
        with pytest.raises(postroom.InvalidArgument, match="rate_limit"):
            client.declare_queue("q", rate_limit=limit)
    assert client.queues() == []


def test_groups_deliver_one_at_a_time_in_send_order(client: Client) -> None:
    if refused(client, "groups"):
        assert_refused(client, "group", lambda: client.send("q", "x", group="a"))
        assert_refused(client, "group", lambda: client.send_many("q", [1], group="a"))
        return
    a = client.send_many("q", ["a1", "a2", "a3"], group="a")
    b = [client.send("q", f"b{i}", group="b") for i in (1, 2)]
    loose = client.send_many("q", ["u1", "u2"])
    first = client.receive("q", max_messages=10)
    assert sorted(ids_of(first)) == sorted([a[0], b[0], *loose])
    by_id = {d.id: d for d in first}
    assert by_id[a[0]].message.group == "a" and by_id[loose[0]].message.group is None
    assert client.receive("q", max_messages=10) == []  # every group has one out
    for d in first:
        client.ack(d)
    assert sorted(ids_of(client.receive("q", max_messages=10))) == [a[1], b[1]]


def test_group_head_retrying_or_dead_blocks_only_its_group(client: Client) -> None:
    if refused(client, "groups"):
        return  # refusal checked above
    client.declare_queue("q", max_attempts=2, backoff=NO_BACKOFF)
    a = client.send_many("q", ["a1", "a2"], group="a")
    b = client.send_many("q", ["b1", "b2"], group="b")
    first = {d.id: d for d in client.receive("q", max_messages=10)}
    assert set(first) == {a[0], b[0]}
    client.retry(first[a[0]], delay=0.5)  # the head of a is in backoff
    client.ack(first[b[0]])
    [b2] = client.receive("q", max_messages=10)
    assert b2.id == b[1]  # group b proceeds; a2 waits behind its retrying head
    client.ack(b2)
    again = client.receive("q", max_messages=10, wait=5)
    assert ids_of(again) == [a[0]] and again[0].attempts == 2
    client.retry(again[0])  # attempts used up: a1 becomes a dead letter
    [a2] = client.receive("q", max_messages=10, wait=5)
    assert a2.id == a[1]
    assert [dl.id for dl in client.dead_letters("q")] == [a[0]]


def test_groups_deliver_in_order_to_concurrent_workers_with_retries(
    client: Client, url: str
) -> None:
    if refused(client, "groups"):
        return
    client.declare_queue("jobs", max_attempts=3, backoff=NO_BACKOFF)
    app = postroom.App(url)
    lock = threading.Lock()
    busy: set[str] = set()
    overlaps: list[str] = []
    done: dict[str, list[int]] = {}
    events: list[tuple[str, int, int]] = []  # (group, seq, attempt) in start order

    @app.handler("jobs", concurrency=6)
    def handle(msg: postroom.Message) -> None:
        group, seq = msg.json()
        with lock:
            if group in busy:
                overlaps.append(group)
            busy.add(group)
            events.append((group, seq, msg.attempts))
        try:
            if group == "stuck" and seq == 0:
                raise RuntimeError("the head of this group always fails")
            if seq % 3 == 1 and msg.attempts == 1:
                raise postroom.Retry(delay=0.05)
            with lock:
                done.setdefault(group, []).append(seq)
        finally:
            with lock:
                busy.discard(group)

    groups = [f"g{i}" for i in range(8)]
    client.send_many("jobs", [("stuck", s) for s in range(3)], group="stuck")
    for seq in range(6):
        for g in groups:
            client.send("jobs", (g, seq), group=g)
    with running(app, url), running(app, url):
        wait_until(lambda: settled(client, "jobs"), timeout=60)
    assert overlaps == []  # never two messages of one group in flight
    assert {g: done[g] for g in groups} == {g: list(range(6)) for g in groups}
    assert done["stuck"] == [1, 2]  # after its head became a dead letter
    stuck_head = [i for i, e in enumerate(events) if e[:2] == ("stuck", 0)]
    assert len(stuck_head) == 3  # every attempt, then the dead letter
    assert events.index(("stuck", 1, 1)) > stuck_head[-1]
    others = [e for e in events[: stuck_head[-1]] if e[0] != "stuck"]
    assert others  # the other groups proceeded while the stuck head retried
    assert [dl.message.json() for dl in client.dead_letters("jobs")] == [["stuck", 0]]


def test_many_groups_are_in_flight_at_once(client: Client, url: str) -> None:
    if refused(client, "groups"):
        return
    heads = [client.send("wide", ["g", i], group=f"g{i}") for i in range(50)]
    tails = [client.send("wide", ["t", i], group=f"g{i}") for i in range(50)]
    got = client.receive("wide", max_messages=100)
    assert sorted(ids_of(got)) == sorted(heads)
    client.release(got)
    assert sorted(ids_of(client.receive("wide", max_messages=100))) == sorted(heads)
    assert len(tails) == 50
    app = postroom.App(url)
    barrier = threading.Barrier(5, timeout=20)
    met: list[str] = []

    @app.handler("five", concurrency=5)
    def handle(msg: postroom.Message) -> None:
        barrier.wait()  # passes only with five groups in flight together
        met.append(msg.id)

    for i in range(10):
        client.send("five", i, group=f"p{i % 5}")
    with running(app, url):
        wait_until(lambda: len(met) == 10 and settled(client, "five"), timeout=60)
    assert not barrier.broken


def test_priority_sends_highest_first_and_keeps_order_of_equals(
    client: Client,
) -> None:
    if refused(client, "priorities"):
        assert_refused(client, "priority", lambda: client.send("q", 1, priority=5))
        assert_refused(
            client, "priority", lambda: client.send_many("q", [1], priority=9)
        )
        client.send("q", "plain", priority=0)  # the default is honoured anywhere
        assert client.receive("q")[0].message.priority == 0
        return
    sent = [
        client.send("q", "a", priority=0),
        client.send("q", "b", priority=5),
        client.send("q", "c", priority=9),
        client.send("q", "d", priority=5),
        client.send("q", "e"),
        *client.send_many("q", ["f", "g"], priority=9),
    ]
    one_by_one = [client.receive("q")[0] for _ in sent]
    assert [d.message.text for d in one_by_one] == [
        '"c"',
        '"f"',
        '"g"',
        '"b"',
        '"d"',
        '"a"',
        '"e"',
    ]
    assert [d.message.priority for d in one_by_one] == [9, 9, 9, 5, 5, 0, 0]
    client.release(one_by_one)
    batch = client.receive("q", max_messages=10)
    assert ids_of(batch) == ids_of(one_by_one)


def test_priority_orders_group_heads_and_send_order_wins_in_a_group(
    client: Client,
) -> None:
    if refused(client, "groups") or refused(client, "priorities"):
        return
    x1 = client.send("q", "x1", group="x", priority=0)
    x2 = client.send("q", "x2", group="x", priority=9)
    y = client.send("q", "y", priority=5)
    z1 = client.send("q", "z1", group="z", priority=7)
    assert ids_of([client.receive("q")[0] for _ in range(3)]) == [z1, y, x1]
    assert client.receive("q") == []  # x2 (priority 9) waits behind x1
    [head] = [d for d in client.peek("q", 10) if d.id == x1]
    assert head.group == "x"
    assert x2 in {m.id for m in client.peek("q", 10)}


def test_group_and_priority_are_kept_through_retries_and_redrive(
    client: Client,
) -> None:
    if refused(client, "groups") or refused(client, "priorities"):
        return
    client.declare_queue("q", max_attempts=1)
    mid = client.send("q", {"n": 1}, group="acct-7", priority=3)
    [first] = client.receive("q")
    assert (first.message.group, first.message.priority) == ("acct-7", 3)
    client.retry(first, delay=0)
    [dead] = client.dead_letters("q")
    assert (dead.message.group, dead.message.priority) == ("acct-7", 3)
    client.redrive("q")
    [again] = client.receive("q", wait=5)
    assert again.id == mid
    assert (again.message.group, again.message.priority) == ("acct-7", 3)


def test_rate_limit_is_stored_with_the_queue_policy(client: Client, url: str) -> None:
    if refused(client, "rate_limits"):
        assert_refused(
            client, "rate_limit", lambda: client.declare_queue("q", rate_limit=5)
        )
        return
    assert client.declare_queue("q", rate_limit=5).rate_limit == 5.0
    with postroom.connect(url) as other:
        assert other.queue_policy("q").rate_limit == 5.0
        assert other.declare_queue("q").rate_limit is None  # declared again: no cap
    assert client.declare_queue("r", rate_limit=2.5).rate_limit == 2.5
    assert client.queue_policy("r").rate_limit == 2.5


def test_rate_limit_holds_back_claims_and_says_when_to_come_back(
    client: Client,
) -> None:
    if refused(client, "rate_limits"):
        return
    client.declare_queue("slow", rate_limit=5)  # a burst of 1 permit
    client.send_many("slow", list(range(4)))
    assert len(client.receive("slow", max_messages=4)) == 1
    assert client.receive("slow", max_messages=4) == []
    wait = client.rate_limit_wait("slow")
    assert 0 < wait <= 0.2  # the worker sleeps this long instead of polling
    got = client.receive("slow", max_messages=4, wait=5)
    assert len(got) == 1  # the next permit, once it came
    client.declare_queue("fast", rate_limit=100)  # a burst of 10 permits
    client.send_many("fast", list(range(30)))
    assert len(client.receive("fast", max_messages=30)) == 10


def test_typed_send_passes_group_and_priority(client: Client, url: str) -> None:
    app = postroom.App(url)

    @app.handler("typed")
    def handle(n: int) -> None:
        del n

    try:
        if refused(client, "groups") or refused(client, "priorities"):
            with pytest.raises(postroom.NotSupported, match="group"):
                handle.send(1, group="g")
            return
        mid = handle.send(5, group="g", priority=7)
        with pytest.raises(postroom.InvalidArgument, match="priority"):
            handle.send(5, priority=11)
    finally:
        app.close()
    [message] = client.peek("typed", 10)
    assert (message.id, message.group, message.priority) == (mid, "g", 7)
