"""RabbitMQ: consumers in several processes race for the same messages."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.integration._racing import (
    LEASE,
    check_each_message_once,
    check_queue_empty,
    race,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def url() -> Iterator[str]:
    require_service("rabbitmq", "127.0.0.1", 5672)
    prefix = "race" + uuid.uuid4().hex[:10]
    yield f"amqp://guest:guest@127.0.0.1:5672/?prefix={prefix}"
    from tests.rabbitmq import delete_prefixes

    delete_prefixes([prefix])


def test_rabbitmq_racing_consumers_get_each_message_once_and_lose_none(
    url: str, tmp_path: Path
) -> None:
    sent, events = race(url, tmp_path)
    check_each_message_once(sent, events)
    # A message is leased again only after the previous lease ran out (the holder
    # ends it, or its connection closed): each lease of a message ends at least
    # one lease length after the one before.
    leases: dict[str, list[float]] = {}
    for e in sorted(events, key=lambda e: (e[1], e[2])):
        if e[0] == "got":
            leases.setdefault(e[1], []).append(e[5])
    for ends in leases.values():
        for earlier, later in itertools.pairwise(ends):
            assert later - earlier >= LEASE - 0.001
    check_queue_empty(url)
