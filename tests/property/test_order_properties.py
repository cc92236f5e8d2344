"""Generated groups, priorities and rate limits thrown at send, send_many and
declare_queue on every backend: each call works (and what was sent is what is
received) or raises a PostroomError; valid arguments are refused only with
NotSupported, by a backend whose capabilities lack the feature."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

import postroom

from . import strategies as s
from .conftest import Harness
from .test_client_properties import attempt


def _supported(c: postroom.Client, group: object, priority: object) -> bool:
    caps = c.aclient.capabilities
    return (group is None or caps.groups) and (not priority or caps.priorities)


@given(
    name=s.names,
    body=s.bodies,
    group=s.groups,
    priority=s.priorities,
    many=st.booleans(),
)
def test_send_with_group_and_priority_round_trips_or_refuses(
    harness: Harness,
    name: s.Drawn,
    body: s.Drawn,
    group: s.Drawn,
    priority: s.Drawn,
    many: bool,
) -> None:
    c = harness.client
    queue = harness.fresh(name[0]) if isinstance(name[0], str) else name[0]
    valid = all(v for _, v in (name, body, group, priority))
    usable = valid and _supported(c, group[0], priority[0])
    try:
        if many:
            sent = attempt(
                usable,
                lambda: c.send_many(
                    queue, [body[0]] * 2, group=group[0], priority=priority[0]
                ),
            )
        else:
            one = attempt(
                usable,
                lambda: c.send(queue, body[0], group=group[0], priority=priority[0]),
            )
            sent = None if one is None else [one]
        if sent is None:
            if isinstance(queue, str):  # refused before the backend: no queue
                assert attempt(False, lambda: c.stats(queue)) is None
            return
        got = c.receive(queue, max_messages=10)
        harness.hold(got)
        # A group hands out one message at a time, in send order.
        assert [d.id for d in got] == (sent[:1] if group[0] is not None else sent)
        assert all(
            (d.message.group, d.message.priority) == (group[0], priority[0])
            for d in got
        )
    finally:
        harness.settle()


@given(name=s.names, rate_limit=s.rate_limits)
def test_declare_with_rate_limit_stores_it_or_refuses(
    harness: Harness, name: s.Drawn, rate_limit: s.Drawn
) -> None:
    c = harness.client
    queue = harness.fresh(name[0]) if isinstance(name[0], str) else name[0]
    valid = name[1] and rate_limit[1]
    usable = valid and (rate_limit[0] is None or c.aclient.capabilities.rate_limits)
    policy = attempt(usable, lambda: c.declare_queue(queue, rate_limit=rate_limit[0]))
    if policy is None:
        if isinstance(queue, str):
            assert attempt(False, lambda: c.stats(queue)) is None
        return
    assert policy.rate_limit == rate_limit[0]
    assert c.queue_policy(queue).rate_limit == rate_limit[0]
    c.delete_queue(queue)
