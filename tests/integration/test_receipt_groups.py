"""A delivery rebuilt from an HTTP or SQS receipt settles a FIFO group's head as the
delivery ``receive`` returned does: the group's next message comes out. The receipt
carries the group (``HttpReceipt``), since some backends read it from the delivery."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import postroom
from postroom.server import HttpReceipt
from postroom.server._receipts import InvalidReceipt
from tests.contract.conftest import BACKENDS, cleanup_backends


@pytest.fixture(params=sorted(BACKENDS))
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    try:
        yield BACKENDS[request.param](tmp_path, "t" + uuid.uuid4().hex[:12])
    finally:
        cleanup_backends()


def _rebuilt(d: postroom.Delivery) -> postroom.Delivery:
    token = HttpReceipt.from_delivery(d, int(time.time() * 1000)).encode()
    return HttpReceipt.decode(token).delivery()


def test_a_head_settled_through_its_receipt_lets_its_group_go_on(url: str) -> None:
    with postroom.connect(url) as c:
        ids = c.send_many("jobs", ["a1", "a2", "a3"], group="a")
        [first] = c.receive("jobs", max_messages=10)
        assert first.id == ids[0]
        c.ack(_rebuilt(first))
        [second] = c.receive("jobs", max_messages=10, wait=5)
        assert second.id == ids[1]
        c.reject(_rebuilt(second), "bad")  # a dead letter frees its group too
        [third] = c.receive("jobs", max_messages=10, wait=5)
        assert third.id == ids[2]
        c.ack(_rebuilt(third))


def test_a_receipt_with_a_bad_group_is_refused() -> None:
    forged = HttpReceipt("q", "id", "r", 1, "", 0, group="has space")
    with pytest.raises(InvalidReceipt):
        HttpReceipt.decode(forged.encode())
    plain = HttpReceipt("q", "id", "r", 1, "", 0)
    assert HttpReceipt.decode(plain.encode()) == plain
