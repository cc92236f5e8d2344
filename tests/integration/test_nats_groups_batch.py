"""NATS groups: what a settle reads ahead for the heads it acks (``Groups.peek_next``,
read while the acks go out) is only trusted while the group's state is the one
it was read by, and a settle of grouped acks with a claim claims the heads it
let out (``docs/backends/nats.md``, "Groups, priorities, rate limits")."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

import postroom
from postroom.backends.nats._records import raw_message
from postroom.model.settlement import Claim, Settlement
from tests.contract.conftest import _nats


@pytest.fixture
def url(tmp_path: Path) -> str:
    return _nats(tmp_path, "gb" + uuid.uuid4().hex[:12])


def test_a_read_ahead_made_stale_by_another_senders_message_is_not_trusted(
    url: str,
) -> None:
    """A head's next message read as none, then another process sends one to
    the group before the head's ack lets the next out: that message goes out."""

    async def run() -> None:
        async with (
            postroom.connect_async(url) as a,
            postroom.connect_async(url) as b,
        ):
            await a.declare_queue("q")
            first = await a.send("q", "1", group="g")
            [head] = await a.receive("q", visibility_timeout=30)
            assert head.id == first
            backend = a.backend
            stale = await backend.peek_next("q", "g", first)  # type: ignore[attr-defined]
            assert stale is not None and stale[1] is None  # nothing after the head
            second = await b.send("q", "2", group="g")  # another process's cache

            async def peek(queue: str, group: str, finished: str) -> object:
                return stale

            backend.peek_next = peek  # type: ignore[attr-defined]
            assert await a.backend.ack([head]) == []
            [nxt] = await a.receive("q", wait=5)
            assert nxt.id == second

    asyncio.run(run())


def test_a_settle_of_grouped_acks_claims_the_heads_it_let_out(url: str) -> None:
    """Ten groups of three: each settle acks the heads it holds and claims the
    next ones, in group order, until every message went out once."""

    async def run() -> None:
        async with postroom.connect_async(url) as c:
            await c.declare_queue("q")
            sent: dict[str, list[str]] = {}
            for i in range(3):
                for g in range(10):
                    mid = await c.send("q", f"{g}.{i}", group=f"g{g}")
                    sent.setdefault(f"g{g}", []).append(mid)
            got = await c.receive("q", max_messages=10, visibility_timeout=30)
            seen = [d.id for d in got]
            while got:
                claim = Claim("q", 10, 30_000, "test")
                lost, got = await c.backend.settle(Settlement(acks=got, claim=claim))
                assert lost == []
                seen += [d.id for d in got]
            assert sorted(seen) == sorted(m for ids in sent.values() for m in ids)
            for ids in sent.values():
                assert [m for m in seen if m in ids] == ids

    asyncio.run(run())


def test_stored_message_headers_are_read_from_their_block() -> None:
    """Header values keep their colons and lose the spaces around them."""
    import base64

    block = b'NATS/1.0\r\nNats-Msg-Id: a.g1\r\nPostroom-Meta: {"a":1}\r\n\r\n'
    raw = raw_message(
        {
            "subject": "s",
            "seq": 7,
            "hdrs": base64.b64encode(block).decode(),
            "data": base64.b64encode(b"body").decode(),
        }
    )
    assert raw.headers == {"Nats-Msg-Id": "a.g1", "Postroom-Meta": '{"a":1}'}
    assert (raw.seq, raw.data, raw.subject) == (7, b"body", "s")
    assert raw_message({"seq": 1}).headers is None
