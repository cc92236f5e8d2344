"""NATS pull requests' inboxes (``postroom.backends.nats._inbox``): one inbox
serves request after request, and a message reaching an inbox that serves no
request is handed back at once instead of after its AckWait."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest

import postroom
from postroom.backends.nats._conn import Jet
from postroom.backends.nats._inbox import Inbox, Pulled
from postroom.backends.nats._names import CONSUMER, Names
from postroom.backends.nats._records import meta_of
from tests.contract.conftest import _delete_nats_prefixes, _nats


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    yield _nats(tmp_path, "inbox" + uuid.uuid4().hex[:10])
    _delete_nats_prefixes()


def _prefix(url: str) -> str:
    return url.rpartition("prefix=")[2]


def test_pulls_the_server_ended_reuse_one_inbox(url: str) -> None:
    with postroom.connect(url) as client:
        client.declare_queue("q")
        client.send_many("q", ["a", "b"])
    stream = Names(_prefix(url)).stream("q")

    async def run() -> None:
        jet = Jet(["nats://127.0.0.1:4222"], {})
        await jet.connect()
        try:
            got = await jet.pull(stream, CONSUMER, 1, hold=0.2)  # the batch is full
            [inbox] = jet._free
            got += await jet.pull(stream, CONSUMER, 5, hold=0.2)  # ended by a 408
            assert jet._free == [inbox]
            assert [json.loads(m.data) for m in got] == ["a", "b"]
            for m in got:
                await jet.ack(m.reply)
        finally:
            await jet.close()

    asyncio.run(run())


def test_a_message_reaching_an_inbox_that_serves_no_request_comes_back_at_once(
    url: str,
) -> None:
    """A message delivered to an inbox after its request was over is NAKed: it
    is claimable again at once, not after its 30 s AckWait."""
    with postroom.connect(url) as client:
        client.declare_queue("q", visibility_timeout=30)
        sent = client.send("q", "x")
        stream = Names(_prefix(url)).stream("q")

        async def stray() -> None:
            nc = await nats.connect("nats://127.0.0.1:4222")
            try:
                inbox = await Inbox(nc).open()  # serving no request
                await nc.publish(
                    f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{CONSUMER}",
                    json.dumps({"batch": 1, "no_wait": True}).encode(),
                    reply=inbox.subject,
                )
                await nc.flush()
                await asyncio.sleep(0.3)
                await inbox.close()
            finally:
                await nc.close()

        asyncio.run(stray())
        [d] = client.receive("q", wait=2)
        assert d.id == sent
        client.ack(d)


def test_the_read_loop_hands_pulled_messages_to_their_request(url: str) -> None:
    """On the backend's connection a pull's messages skip nats-py's message path
    (its queue, task and header parser, which counts ``in_msgs``): the read
    loop hands them to the request, headers read from their block."""
    headers = {"k": "a: b é", "traceparent": "00-x"}
    with postroom.connect(url) as client:
        client.declare_queue("q")
        client.send_many("q", ["a", "b", "c"], headers=headers)
    stream = Names(_prefix(url)).stream("q")

    async def run() -> None:
        jet = Jet(["nats://127.0.0.1:4222"], {})
        await jet.connect()
        try:
            counted = jet.nc.stats["in_msgs"]
            seen: list[Pulled] = []
            got = await jet.pull(stream, CONSUMER, 5, hold=0.2)
            await jet.pull(stream, CONSUMER, 5, hold=0.05, each=seen.append)
            assert jet.nc.stats["in_msgs"] == counted  # nats-py saw none of them
            assert seen == []
            assert [json.loads(m.data) for m in got] == ["a", "b", "c"]
            for m in got:
                assert isinstance(m, Pulled)
                meta = meta_of(m.headers)
                assert meta is not None and meta.headers.items() >= headers.items()
                await jet.ack(m.reply)
        finally:
            await jet.close()

    asyncio.run(run())


def test_a_stray_message_on_the_backends_connection_comes_back_at_once(
    url: str,
) -> None:
    """As above, on the read loop's own path: a message reaching a free inbox of
    the backend's connection is NAKed at once."""
    with postroom.connect(url) as client:
        client.declare_queue("q", visibility_timeout=30)
        sent = client.send("q", "x")
        stream = Names(_prefix(url)).stream("q")

        async def stray() -> None:
            jet = Jet(["nats://127.0.0.1:4222"], {})
            await jet.connect()
            try:
                inbox = await Inbox(jet.nc).open()  # serving no request
                await jet.nc.publish(
                    f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{CONSUMER}",
                    json.dumps({"batch": 1, "no_wait": True}).encode(),
                    reply=inbox.subject,
                )
                await jet.nc.flush()
                await asyncio.sleep(0.3)
                await inbox.close()
            finally:
                await jet.close()

        asyncio.run(stray())
        [d] = client.receive("q", wait=2)
        assert d.id == sent and d.attempts == 2
        client.ack(d)
