"""RabbitMQ specifics of groups, priorities and rate limits: the folds that every
process applies to the streams agree (a process that joins late included), and a
process that connects later knows every group's state from the meta stream."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import postroom
from postroom.backends.rabbitmq._ordered import Pending, _expire, entry_record
from postroom.backends.rabbitmq._rate import (
    SKEW_MS,
    Rate,
    estimate,
    fold_permit,
    refill_ms,
)
from postroom.backends.rabbitmq._state import State
from postroom.model.message import from_ms
from tests.conftest import require_service


def _records(gaps: list[int], wants: list[int], rate: float) -> list[dict[str, Any]]:
    at, out = 1_000_000, []
    for n, (gap, want) in enumerate(zip(gaps, wants, strict=False)):
        at += gap
        out.append(
            {"t": "permit", "q": "q", "n": want, "r": rate, "at": at, "i": "w", "g": n}
        )
    return out


@settings(max_examples=200, deadline=None)
@given(
    gaps=st.lists(st.integers(0, 400), min_size=1, max_size=60),
    wants=st.lists(st.integers(1, 6), min_size=60, max_size=60),
    rate=st.sampled_from([2.0, 5.0, 20.0, 100.0]),
    join=st.integers(0, 59),
)
def test_a_process_that_joins_late_grants_what_every_process_grants(
    gaps: list[int], wants: list[int], rate: float, join: int
) -> None:
    """A fold that missed the first records grants nothing until it knows the
    bucket is full, and from then on exactly what a fold of every record grants."""
    records = _records(gaps, wants, rate)
    join = min(join, len(records) - 1)
    whole: dict[str, Rate] = {}
    whole_grants: dict[str, tuple[int, int]] = {}
    for rec in records:
        fold_permit(whole, whole_grants, "w", 0, rec)
    # It reads from a time on: every record it misses was stamped before it,
    # up to SKEW_MS later than the first record it reads at the latest.
    seen_from = records[join]["at"] - SKEW_MS
    late: dict[str, Rate] = {}
    late_grants: dict[str, tuple[int, int]] = {}
    synced_at = None
    for rec in records[join:]:
        fold_permit(late, late_grants, "w", seen_from, rec)
        if synced_at is None and late["q"].synced:
            synced_at = rec["g"]
    for rec in records[join:]:
        n = str(rec["g"])
        if synced_at is not None and rec["g"] >= synced_at:
            assert late_grants[n] == whole_grants[n]
        else:
            assert late_grants[n][0] == 0
    pauses = [
        n
        for n in range(join + 1, len(records))
        if records[n]["at"] - records[n - 1]["at"] >= refill_ms(rate)
    ]
    if pauses:  # the first pause of a full refill time makes it agree
        assert synced_at is not None and synced_at <= pauses[0]


@settings(max_examples=100, deadline=None)
@given(
    starts=st.lists(st.integers(0, 200), min_size=2, max_size=4),
    rate=st.sampled_from([5.0, 20.0, 100.0]),
)
def test_processes_that_join_together_come_to_know_the_bucket(
    starts: list[int], rate: float
) -> None:
    """Processes that all missed what emptied a bucket and claim whenever their
    fold lets them never keep each other from knowing it for ever."""
    first = 1_000_000
    folds = [({}, {}) for _ in starts]  # (rates, grants) of each process
    due = [first + start for start in starts]
    seen_from = first - SKEW_MS - 1  # the record at `first` is one they missed
    old = {"t": "permit", "q": "q", "n": 1, "r": rate, "at": first, "i": "old"}
    for rates, grants in folds:
        fold_permit(rates, grants, "-", seen_from, old)
    granted, n = 0, 0
    while min(due) < first + 100 * refill_ms(rate):
        me = due.index(min(due))
        now = due[me]
        rates, grants = folds[me]
        likely, due[me] = estimate(rates.get("q"), rate, now, 3)
        if likely:
            n += 1
            rec = {"t": "permit", "q": "q", "n": likely, "r": rate, "at": now}
            rec |= {"i": f"p{me}", "g": str(n)}
            for i, (r, g) in enumerate(folds):
                fold_permit(r, g, f"p{i}", seen_from, rec)
            got, due[me] = grants.pop(str(n))
            granted += got
            due[me] = max(due[me], now + 1)
    assert all(rates["q"].synced for rates, _ in folds)
    assert granted > 0


@pytest.fixture
def url() -> Iterator[str]:
    require_service("rabbitmq", "127.0.0.1", 5672)
    prefix = "order" + uuid.uuid4().hex[:10]
    yield f"amqp://guest:guest@127.0.0.1:5672/?prefix={prefix}"
    from tests.rabbitmq import delete_prefixes

    delete_prefixes([prefix])


def test_a_process_connecting_later_knows_every_group_and_priority(url: str) -> None:
    with postroom.connect(url) as first:
        first.declare_queue("q", backoff=postroom.Backoff(initial=0.0, jitter=False))
        a = first.send_many("q", ["a1", "a2"], group="a")
        b = first.send_many("q", ["b1", "b2"], group="b", priority=3)
        low = first.send("q", "low", priority=1)
        [head] = first.receive("q")
        assert head.id == b[0]  # priority 3 first
        first.retry(head, delay=0)  # keeps its place at the head of b
        with postroom.connect(url) as second:
            got = second.receive("q", max_messages=10)
            assert [d.id for d in got] == [b[0], low, a[0]]
            assert got[0].attempts == 2
            assert second.receive("q", max_messages=10) == []
            with pytest.raises(postroom.LeaseLost):
                first.ack(head)  # retried: that lease is over
            second.ack_many(got)
        assert sorted(d.id for d in first.receive("q", max_messages=10)) == sorted(
            [a[1], b[1]]
        )


def test_leases_of_a_closed_connection_end_with_it(url: str) -> None:
    """As the broker ends the AMQP leases of a closed connection, closing ends
    its leases of grouped messages: the group goes on at once, attempt counted."""
    with postroom.connect(url) as other:
        other.declare_queue("q", visibility_timeout=60)
        mid, _ = other.send_many("q", ["a1", "a2"], group="a")
        with postroom.connect(url) as first:
            assert [d.id for d in first.receive("q")] == [mid]
        [again] = other.receive("q", max_messages=10)
        assert (again.id, again.attempts) == (mid, 2)
        assert again.message.group == "a"


def _reference_pick(pending: Pending, now: int, wanted: int) -> list[str]:
    """model.order's rules read off every message in send order: the first of
    each group and every ungrouped one, if free; highest priority first."""
    seen: set[str | None] = set()
    heads = []
    for e in pending.entries.values():
        group = e.message.group
        if group is None or group not in seen:
            seen.add(group)
            heads.append(e)
    free = [e for e in heads if e.free_at() <= now]
    free.sort(key=lambda e: -e.message.priority)
    return [e.message.id for e in free[:wanted]]


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["send", "claim", "ack", "retry", "release", "dead", "wait"]),
        st.integers(0, 9),  # priority, or how many a claim wants
        st.sampled_from([None, "a", "b", "c"]),
        st.integers(0, 3),  # which leased message, or delay (x 100 ms)
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops=_OPS)
def test_the_fold_picks_what_the_rules_say(
    ops: list[tuple[str, int, Any, int]],
) -> None:
    """Claims folded from random records take exactly what model.order's rules
    take from the same messages; settling with a lease taken over changes
    nothing; every process folding the records agrees."""
    states = [State(me="w"), State(me="other")]
    policy = postroom.QueuePolicy(max_attempts=3).to_dict()
    now, sent, held = 1_000_000, 0, []
    records: list[dict[str, Any]] = [{"t": "policy", "q": "q", "p": policy}]
    expected: list[list[str]] = []
    for n, (kind, num, group, which) in enumerate(ops):
        now += 50
        rec: dict[str, Any] = {"q": "q", "i": "w", "g": f"r{n}"}
        if kind == "send" and (num or group):
            sent += 1
            m = postroom.Message(
                id=f"m{sent:04d}",
                queue="q",
                body=b"x",
                headers={},
                enqueued_at=from_ms(now),
                available_at=from_ms(now + which * 100),
                group=group,
                priority=num,
            )
            rec |= {"t": "os", "ms": [entry_record(m, [])]}
        elif kind == "claim":
            pending = states[0].ordered.get("q")
            if pending is not None:  # expire first, as the fold does
                probe = State(me="w")
                for r in records:
                    probe.apply(r)
                _expire(probe, "q", probe.ordered["q"], now)
                expected.append(_reference_pick(probe.ordered["q"], now, num))
            rec |= {"t": "oc", "n": num, "x": 300, "c": "c", "at": now}
        elif kind in ("ack", "retry", "release", "dead") and held:
            mid, token = held[which % len(held)]
            rec |= {
                "t": {"ack": "oa", "retry": "or", "release": "ol", "dead": "od"}[kind]
            }
            rec |= {"ids": [[mid, token]], "a": now + 100, "at": now, "reason": "x"}
            rec |= {"y": {"at": now, "consumer": "c", "outcome": "retried"}}
        else:
            continue
        records.append(rec)
        for state in states:
            state.apply(rec)
        if rec["t"] == "oc" and "q" in states[0].ordered:
            got = states[0].results.pop(rec["g"])
            assert got == expected.pop()
            pending = states[0].ordered["q"]
            held += [(mid, pending.entries[mid].token) for mid in got]
    mine, theirs = (s.ordered.get("q", Pending()) for s in states)
    assert [(e.message, e.token, e.history) for e in mine.entries.values()] == [
        (e.message, e.token, e.history) for e in theirs.entries.values()
    ]


def test_a_rate_limit_paces_grouped_and_prioritised_messages_too(url: str) -> None:
    """Grouped and prioritised messages take permits like the others; those a
    claim took beyond its permits go back without counting an attempt."""
    with postroom.connect(url) as c:
        c.declare_queue("slow", rate_limit=1)  # a burst of 1 permit, 1 s apart
        urgent = c.send("slow", "urgent", priority=9)
        grouped = [c.send("slow", f"g{i}", group=f"g{i}") for i in range(3)]
        plain = c.send("slow", "plain")
        got = []
        for _ in range(5):
            [d] = c.receive("slow", max_messages=10, wait=5)
            assert d.attempts == 1
            got.append(d.id)
            assert c.receive("slow", max_messages=10) == []  # no permit left
            c.ack(d)
        assert got == [urgent, *grouped, plain]


def test_priority_zero_keeps_send_order_across_grouped_and_ungrouped(
    url: str,
) -> None:
    """Grouped messages of priority 0 do not overtake older ungrouped ones (nor
    starve them): a claim weighs them by enqueue time."""
    with postroom.connect(url) as c:
        c.declare_queue("q")
        sent = []
        for i in range(3):
            sent.append(c.send("q", f"u{i}"))
            time.sleep(0.002)  # enqueue times are in ms
            sent.append(c.send("q", f"g{i}", group=f"g{i}"))
            time.sleep(0.002)
        got = []
        for _ in sent:
            [d] = c.receive("q")
            assert d.attempts == 1  # a grouped message given back counts none
            got.append(d.id)
        assert got == sent
