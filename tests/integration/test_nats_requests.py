"""NATS requests whose replies the read loop hands over directly
(``postroom.backends.nats._replies``), and lone ones written to the socket at
once instead of by nats-py's flusher task one event-loop turn later."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import postroom
from postroom.backends.nats._conn import Jet
from postroom.backends.nats._names import Names
from tests.contract.conftest import _delete_nats_prefixes, _nats


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    yield _nats(tmp_path, "requests" + uuid.uuid4().hex[:10])
    _delete_nats_prefixes()


def _names(url: str) -> Names:
    return Names(url.rpartition("prefix=")[2])


async def _spied(jet: Jet) -> list[bytes]:
    """What the connection writes to its socket, write by write."""
    writes: list[bytes] = []
    transport: Any = jet.nc._transport
    original = transport.writelines

    def writelines(data: list[bytes]) -> None:
        writes.append(b"".join(data))
        original(data)

    transport.writelines = writelines
    return writes


def _publish(jet: Jet, names: Names, body: bytes, *, at_once: bool) -> Any:
    return jet.publish(
        names.subject("q", uuid.uuid4().hex),
        body,
        {},
        stream=names.stream("q"),
        queue="q",
        at_once=at_once,
    )


def test_a_lone_publish_is_written_before_the_event_loop_turns(url: str) -> None:
    with postroom.connect(url) as client:
        client.declare_queue("q")
    names = _names(url)

    async def run() -> None:
        jet = Jet(["nats://127.0.0.1:4222"], {})
        await jet.connect()
        try:
            await _publish(jet, names, b"warm", at_once=False)  # the reply inbox
            writes = await _spied(jet)
            counted = jet.nc.stats["in_msgs"]
            for body, at_once in ((b"lone", True), (b"batched", False)):
                seen: list[bool] = []
                # Runs at the event loop's next turn, before nats-py's flusher.
                asyncio.get_running_loop().call_soon(
                    lambda seen=seen, body=body: seen.append(
                        any(body in w for w in writes)
                    )
                )
                ack = await _publish(jet, names, body, at_once=at_once)
                assert ack.stream == names.stream("q") and not ack.duplicate
                assert seen == [at_once]
            # The stream's acks never took nats-py's message path.
            assert jet.nc.stats["in_msgs"] == counted
        finally:
            await jet.close()

    asyncio.run(run())
    with postroom.connect(url) as client:
        assert client.stats("q").ready == 3


def test_requests_keep_nats_errors(url: str) -> None:
    """No stream for a subject is still ``QueueNotFound``; a request nobody
    listens to a ``BackendError``."""
    names = _names(url)

    async def run() -> None:
        jet = Jet(["nats://127.0.0.1:4222"], {})
        await jet.connect()
        try:
            with pytest.raises(postroom.QueueNotFound):
                await _publish(jet, names, b"x", at_once=True)
            with pytest.raises(postroom.BackendError):
                async with jet._io():
                    await jet.replies.request(
                        f"{names.prefix}.nobody", b"", timeout=0.2
                    )
        finally:
            await jet.close()

    asyncio.run(run())


def test_a_lone_sends_counter_is_written_once_its_message_is_stored(
    url: str,
) -> None:
    """The ``sent`` counter's compare-and-set of a single ``send`` goes out after
    the stream acknowledged the message, not beside it (on the server it held
    the message's delivery back), and still before ``send`` returns."""

    async def run() -> None:
        async with postroom.connect_async(url) as client:
            await client.declare_queue("q")
            await client.send("q", "warm")
            jet: Jet = client.backend.jet  # type: ignore[attr-defined]
            events: list[tuple[str, bytes]] = []
            transport: Any = jet.nc._transport
            writelines, on_raw = transport.writelines, jet.replies._on_raw

            def spy_write(data: list[bytes]) -> None:
                events.append(("write", b"".join(data)))
                writelines(data)

            def spy_reply(subject: bytes, *rest: Any) -> None:
                events.append(("reply", subject))
                on_raw(subject, *rest)

            transport.writelines = spy_write
            jet.replies._on_raw = spy_reply  # type: ignore[method-assign]
            jet.nc.direct(jet.replies._sid or 0, spy_reply)
            mid = await client.send("q", "x")
            kinds = [
                "message" if mid.encode() in data else "counter"
                for kind, data in events
                if kind == "write" and (mid.encode() in data or b".cnt." in data)
            ]
            assert kinds == ["message", "counter"]
            writes = [i for i, (kind, data) in enumerate(events) if kind == "write"]
            message = next(i for i in writes if mid.encode() in events[i][1])
            counter = next(i for i in writes if b".cnt." in events[i][1])
            replies = [i for i, (kind, _) in enumerate(events) if kind == "reply"]
            first_reply = next(i for i in replies if i > message)
            assert first_reply < counter  # the PubAck came first
            assert (await client.counters(["q"]))["q"]["sent"] == 2

    asyncio.run(run())
