"""NATS: consumers in several processes race for the same messages."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.conftest import _delete_nats_prefixes, _nats
from tests.integration._racing import (
    LEASE,
    check_each_message_once,
    check_queue_empty,
    race,
)

pytestmark = pytest.mark.slow

PULL_SLACK = 0.2  # seconds a pull may be in flight on a loaded machine


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    yield _nats(tmp_path, "race" + uuid.uuid4().hex[:10])
    _delete_nats_prefixes()


def test_nats_racing_consumers_get_each_message_once_and_lose_none(
    url: str, tmp_path: Path
) -> None:
    sent, events = race(url, tmp_path)
    check_each_message_once(sent, events)
    # A message is delivered again only after the previous lease ran out: each
    # lease of a message ends about one lease length after the one before. A
    # lease counts from the sending of the pull that took it (never later than
    # the server's), and that pull can be sent a moment before the previous
    # lease ends and be answered after it: PULL_SLACK allows for that flight.
    leases: dict[str, list[float]] = {}
    for e in sorted(events, key=lambda e: (e[1], e[2])):
        if e[0] == "got":
            leases.setdefault(e[1], []).append(e[5])
    for ends in leases.values():
        for earlier, later in itertools.pairwise(ends):
            assert later - earlier >= LEASE - PULL_SLACK
    check_queue_empty(url)
