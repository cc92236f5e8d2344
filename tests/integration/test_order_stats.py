"""What ``stats`` counts for messages waiting behind the head of their group, on
the backends with groups whose order code this covers (NATS and RabbitMQ are
checked by their own tests): a held message is ready once its own available
time has passed and delayed before, like any message (docs/scheduling.md), as
SQS counts the held messages of a FIFO queue as visible."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import postroom
from tests.contract.conftest import BACKENDS, cleanup_backends


@pytest.fixture(params=["memory", "sqlite", "redis", "redis-cluster", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    try:
        yield BACKENDS[request.param](tmp_path, "t" + uuid.uuid4().hex[:12])
    finally:
        cleanup_backends()


def test_held_group_members_count_by_their_own_available_time(url: str) -> None:
    with postroom.connect(url) as c:
        head = c.send("jobs", 0, group="g")
        c.send("jobs", 1, group="g")  # held, visible by its own time
        c.send("jobs", 2, group="g", delay=600)  # held and delayed
        c.send("jobs", 3, delay=600)  # delayed, no group
        c.send("jobs", 4)  # ready, no group
        s = c.stats("jobs")
        assert (s.ready, s.delayed, s.in_flight) == (3, 2, 0)
        got = c.receive("jobs", max_messages=10)
        assert {d.id for d in got} == {head, got[-1].id} and len(got) == 2
        s = c.stats("jobs")
        assert (s.ready, s.delayed, s.in_flight) == (1, 2, 2)
        c.ack_many(got)
        s = c.stats("jobs")  # the held message now leads its group
        assert (s.ready, s.delayed, s.in_flight) == (1, 2, 0)
        c.purge("jobs")
        s = c.stats("jobs")
        assert (s.ready, s.delayed, s.in_flight) == (0, 0, 0)
