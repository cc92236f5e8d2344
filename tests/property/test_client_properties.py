"""Generated arguments thrown at every public client call on every backend.

Each call either works (and what was sent is what is received) or raises a
:class:`postroom.PostroomError` subclass, never another exception; a call with
only valid arguments always works. After each example the harness checks that
nothing is left in flight, the sentinel queue is unchanged and the backend still
works (see conftest.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from hypothesis import given
from hypothesis import strategies as st

import postroom

from . import strategies as s
from .conftest import Harness

T = TypeVar("T")


def attempt(valid: bool, call: Callable[[], T]) -> T | None:
    """``call()``'s result, or ``None`` when it raised a PostroomError (which a
    call with only ``valid`` arguments must not)."""
    try:
        return call()
    except postroom.PostroomError as exc:
        assert not valid, f"valid arguments refused: {exc!r}"
        return None


def _seconds(value: Any) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _expected_json(body: Any) -> Any:
    return json.loads(json.dumps(body))


@given(
    name=s.names,
    body=s.bodies,
    headers=s.headers,
    delay=s.delays_now,
    dedup=s.texts,
)
def test_send_round_trips_or_refuses(
    harness: Harness,
    name: s.Drawn,
    body: s.Drawn,
    headers: s.Drawn,
    delay: s.Drawn,
    dedup: s.Drawn,
) -> None:
    c = harness.client
    queue = harness.fresh(name[0]) if isinstance(name[0], str) else name[0]
    valid = all(v for _, v in (name, body, headers, delay, dedup))
    try:
        mid = attempt(
            valid,
            lambda: c.send(
                queue, body[0], delay=delay[0], headers=headers[0], dedup_key=dedup[0]
            ),
        )
        if mid is None:
            # Refused before the backend: not even the queue was created.
            if isinstance(queue, str):
                assert attempt(False, lambda: c.stats(queue)) is None
            return
        [d] = c.receive(queue)
        harness.hold([d])
        assert d.id == mid
        if isinstance(body[0], bytes):
            assert d.body == body[0]
        else:
            assert d.message.json() == _expected_json(body[0])
        sent = dict(headers[0] or {})
        assert {k: d.headers[k] for k in sent} == sent
    finally:
        harness.settle()


@given(name=s.names, bodies=st.lists(s.bodies, max_size=4), headers=s.headers)
def test_send_many_round_trips_or_refuses(
    harness: Harness, name: s.Drawn, bodies: list[s.Drawn], headers: s.Drawn
) -> None:
    c = harness.client
    queue = harness.fresh(name[0]) if isinstance(name[0], str) else name[0]
    valid = name[1] and headers[1] and all(v for _, v in bodies)
    try:
        ids = attempt(
            valid,
            lambda: c.send_many(queue, [b for b, _ in bodies], headers=headers[0]),
        )
        if not ids:
            return
        got = c.receive(queue, max_messages=len(ids))
        harness.hold(got)
        assert sorted(d.id for d in got) == sorted(ids)
    finally:
        harness.settle()


@given(
    max_messages=s.max_messages,
    lease=s.optional_leases,
    wait=s.waits,
    extend_by=s.leases,
)
def test_receive_and_extend_leases_end(
    harness: Harness,
    max_messages: s.Drawn,
    lease: s.Drawn,
    wait: s.Drawn,
    extend_by: s.Drawn,
) -> None:
    c = harness.client
    queue = harness.fresh("leases")
    c.send_many(queue, [1, 2])
    try:
        valid = max_messages[1] and lease[1] and wait[1]
        got = attempt(
            valid,
            lambda: c.receive(
                queue,
                max_messages=max_messages[0],
                visibility_timeout=lease[0],
                wait=wait[0],
            ),
        )
        if got is None:
            st_ = c.stats(queue)
            assert (st_.ready, st_.in_flight) == (2, 0)  # refused: nothing leased
            return
        harness.hold(got)
        assert 1 <= len(got) <= 2
        # A lease of a few milliseconds may be over (and lost) before extend.
        lasting = lease[0] is None or _seconds(lease[0]) >= 5
        longer = attempt(
            extend_by[1] and lasting, lambda: c.extend(got[0], extend_by[0])
        )
        if longer is not None:
            harness.hold([longer])
            harness.held.remove(got[0])
    finally:
        harness.settle()


@given(
    max_attempts=s.max_attempts,
    lease=s.leases,
    backoff=s.backoffs,
    dead_letter=s.names,
    window=s.dedup_windows,
    delay=s.delays_any,
)
def test_declare_queue_stores_a_usable_policy_or_refuses(
    harness: Harness,
    max_attempts: s.Drawn,
    lease: s.Drawn,
    backoff: s.Drawn,
    dead_letter: s.Drawn,
    window: s.Drawn,
    delay: s.Drawn,
) -> None:
    c = harness.client
    queue = harness.fresh("policy")
    dlq = dead_letter[0]
    if isinstance(dlq, str):
        dlq = harness.fresh(dlq)
    parts = (max_attempts, lease, backoff, dead_letter, window)
    try:

        def declare() -> postroom.QueuePolicy:
            policy = postroom.Backoff(**backoff[0]) if backoff[0] else None
            return c.declare_queue(
                queue,
                max_attempts=max_attempts[0],
                visibility_timeout=lease[0],
                backoff=policy,
                dead_letter=dlq,
                dedup_window=window[0],
            )

        stored = attempt(all(v for _, v in parts), declare)
        if stored is None:
            assert attempt(False, lambda: c.stats(queue)) is None
            return
        assert stored.max_attempts == max_attempts[0]
        # The queue works with that policy: a delayed send, a retry, a reject.
        attempt(delay[1], lambda: c.send(queue, "later", delay=delay[0]))
        c.send(queue, "now")
        [d] = c.receive(queue)
        harness.hold([d])
        try:
            c.retry(d, delay=0)
        except postroom.LeaseLost:
            # A 1 ms lease may end before the retry: NATS then refuses it.
            assert lease[0] == 0.001
        harness.held.remove(d)
        got = c.receive(queue)
        harness.hold(got)
        for d in got:
            c.reject(d, error="poison")
            harness.held.remove(d)
        assert c.stats(queue).in_flight == 0
    finally:
        harness.settle()


@given(
    limit=s.limits,
    redrive_limit=s.optional_limits,
    reason=s.reasons,
    contains=s.texts,
    rate=s.rates,
    dry_run=st.sampled_from([(True, True), (False, True), ("yes", False)]),
    ids=st.sampled_from(
        [(None, True), ([], True), ("X", True), ([1], False), (b"i", False)]
    ),
)
def test_inspection_and_redrive_limits(
    harness: Harness,
    limit: s.Drawn,
    redrive_limit: s.Drawn,
    reason: s.Drawn,
    contains: s.Drawn,
    rate: s.Drawn,
    dry_run: s.Drawn,
    ids: s.Drawn,
) -> None:
    c = harness.client
    queue = harness.fresh("admin")
    c.send_many(queue, [1, 2, 3])
    for d in c.receive(queue, max_messages=2):
        c.reject(d, error="bad")
    try:
        peeked = attempt(limit[1], lambda: c.peek(queue, limit[0]))
        if peeked is not None:
            assert len(peeked) == min(1, limit[0]) or len(peeked) <= limit[0]
        valid = limit[1] and reason[1] and contains[1]
        found = attempt(
            valid,
            lambda: c.dead_letters(
                queue, limit=limit[0], reason=reason[0], error_contains=contains[0]
            ),
        )
        if found is not None:
            assert len(found) <= min(2, limit[0])
        valid = redrive_limit[1] and rate[1] and dry_run[1] and ids[1]
        moved = attempt(
            valid,
            lambda: c.redrive(
                queue,
                ids=ids[0],
                limit=redrive_limit[0],
                rate=rate[0],
                dry_run=dry_run[0],
            ),
        )
        st_ = c.stats(queue)
        if moved is None or dry_run[0] is True:
            assert (st_.ready, st_.dead) == (1, 2)  # refused or dry: unchanged
        else:
            assert (st_.ready, st_.dead) == (1 + len(moved), 2 - len(moved))
        assert attempt(False, lambda: c.purge(queue, dead="yes")) is None  # type: ignore[arg-type]
        assert c.purge(queue, dead=True) == st_.dead
    finally:
        harness.settle()


@given(
    topic=s.topic_names,
    name=s.topic_names,
    filter_=s.headers,
    max_attempts=s.max_attempts,
    lease=s.leases,
    event_headers=s.headers,
    body=s.bodies,
)
def test_subscriptions_get_what_is_published_or_refuse(
    harness: Harness,
    topic: s.Drawn,
    name: s.Drawn,
    filter_: s.Drawn,
    max_attempts: s.Drawn,
    lease: s.Drawn,
    event_headers: s.Drawn,
    body: s.Drawn,
) -> None:
    c = harness.client
    t = harness.fresh(topic[0]) if isinstance(topic[0], str) else topic[0]
    valid = all(v for _, v in (topic, name, filter_, max_attempts, lease))
    try:
        sub = attempt(
            valid,
            lambda: c.create_subscription(
                t,
                name[0],
                filter=filter_[0],
                max_attempts=max_attempts[0],
                visibility_timeout=lease[0],
            ),
        )
        if sub is None:
            return
        assert sub.queue == f"{t}:{name[0]}"
        eid = attempt(
            event_headers[1] and body[1],
            lambda: c.publish(t, body[0], headers=event_headers[0]),
        )
        if eid is None:
            assert c.stats(sub.queue).ready == 0
            return
        got = c.receive(sub.queue)
        harness.hold(got)
        sent = {**(event_headers[0] or {}), "postroom-topic": t}
        wanted = all(sent.get(k) == v for k, v in (filter_[0] or {}).items())
        assert [d.id for d in got] == ([eid] if wanted else [])
        c.delete_subscription(t, name[0])
        harness.held.clear()  # deleted with its queue
        harness.queues.discard(sub.queue)
    finally:
        harness.settle()


@given(url=st.one_of(st.integers(), st.binary(), st.floats(), st.lists(st.text())))
def test_connect_refuses_a_url_that_is_not_a_string(url: Any) -> None:
    for build in (postroom.connect, postroom.connect_async, postroom.App):
        try:
            build(url)
        except postroom.InvalidArgument as exc:
            assert "url must be a string" in str(exc)
        else:
            raise AssertionError(f"{build.__name__}({url!r}) was accepted")
