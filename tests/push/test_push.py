"""HTTP push subscriptions against a real local receiver (SPEC §6, issue 4)."""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http_event

import postroom
from postroom import AsyncClient, Backoff
from postroom.runtime.push import Pusher, run_pusher
from tests.contract.conftest import (
    BACKENDS,
    _redis_cleanup,  # noqa: F401 - autouse: drop keys
)
from tests.push.conftest import Receiver, eventually

pytestmark = pytest.mark.anyio

FAST = Backoff(initial=0.05, factor=1.0, max=0.05, jitter=False)


@pytest.fixture(params=list(BACKENDS))
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh URL on every backend of the contract suite."""
    return BACKENDS[request.param](tmp_path, "p" + uuid.uuid4().hex[:12])


@pytest.fixture
def mem_url() -> str:
    """A fresh ``memory://`` URL."""
    return f"memory://push-{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def pushing(client: AsyncClient, **options: float) -> AsyncIterator[Pusher]:
    """Run a pusher in the background for the duration of the block."""
    opts: dict[str, float] = {"timeout": 2.0, "refresh": 0.1, "poll": 0.1, **options}
    pusher = Pusher(
        client,
        concurrency=int(opts.pop("concurrency", 8)),
        timeout=opts["timeout"],
        refresh=opts["refresh"],
        poll=opts["poll"],
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(pusher.run)
        yield pusher
        pusher.stop()


def depth(client: AsyncClient, queue: str) -> Callable[[], object]:
    async def check() -> bool:
        st = await client.stats(queue)
        return st.ready + st.in_flight + st.delayed == 0

    return check


async def test_push_delivers_signed_cloudevent(
    any_url: str, receiver: Receiver
) -> None:
    async with AsyncClient(any_url) as client:
        sub = await client.create_subscription(
            "product.inserted", "search", push_endpoint=receiver.endpoint()
        )
        assert sub.secret
        async with pushing(client):
            eid = await client.publish(
                "product.inserted", {"sku": "A-1"}, headers={"trace": "t-42"}
            )
            await eventually(lambda: receiver.count() == 1, what="one push")
            await eventually(depth(client, sub.queue), what="the ack")
    [req] = receiver.got()
    event = from_http_event(HTTPMessage(headers=req.headers, body=req.body))
    attrs = event.get_attributes()
    assert attrs["specversion"] == "1.0"
    assert attrs["id"] == eid
    assert attrs["source"] == "postroom/product.inserted"
    assert attrs["type"] == "product.inserted"
    assert attrs["datacontenttype"] == "application/json"
    assert abs((datetime.now(UTC) - attrs["time"]).total_seconds()) < 60
    assert event.get_data() == {"sku": "A-1"}
    assert req.headers["trace"] == "t-42"
    assert req.headers["postroom-subscription"] == "search"
    assert req.headers["postroom-attempt"] == "1"
    assert postroom.verify_signature(sub.secret, req.headers, req.body)
    assert not postroom.verify_signature("other-secret", req.headers, req.body)
    assert not postroom.verify_signature(sub.secret, req.headers, req.body + b" ")


async def test_push_500_retries_then_dead_letters_then_redrive_delivers(
    any_url: str, receiver: Receiver
) -> None:
    receiver.status, receiver.answer = 500, b"database is down " + b"x" * 400
    async with AsyncClient(any_url) as client:
        sub = await client.create_subscription(
            "orders", "billing", push_endpoint=receiver.endpoint(), max_attempts=3
        )
        await client.declare_queue(sub.queue, max_attempts=3, backoff=FAST)
        async with pushing(client):
            eid = await client.publish("orders", {"order": 7})
            await eventually(lambda: receiver.count() == 3, what="three attempts")

            async def dead() -> bool:
                return len(await client.dead_letters(sub.queue)) == 1

            await eventually(dead, what="a dead letter")
            [dl] = await client.dead_letters(sub.queue)
            assert dl.id == eid and dl.reason == "failed" and dl.attempts == 3
            assert dl.error is not None
            assert "HTTP 500" in dl.error.message
            assert "database is down" in dl.error.message
            assert len(dl.error.message) < 400  # only the first bytes of the answer
            assert [h.outcome for h in dl.history] == ["failed"] * 3
            assert receiver.count() == 3  # nothing more once dead

            receiver.status = 204
            assert await client.redrive(sub.queue) == [eid]
            await eventually(lambda: receiver.count() == 4, what="the redriven push")
            await eventually(depth(client, sub.queue), what="the ack")
        assert await client.dead_letters(sub.queue) == []
    last = receiver.got()[-1]
    assert last.headers["ce-id"] == eid
    assert last.headers["postroom-attempt"] == "1"


async def test_push_timeout_is_a_failed_attempt(
    mem_url: str, receiver: Receiver
) -> None:
    receiver.delay = 5.0
    async with AsyncClient(mem_url) as client:
        sub = await client.create_subscription(
            "slowpoke", "s", push_endpoint=receiver.endpoint(), max_attempts=2
        )
        await client.declare_queue(sub.queue, max_attempts=2, backoff=FAST)
        async with pushing(client, timeout=0.3):
            await client.publish("slowpoke", "x")

            async def dead() -> bool:
                return len(await client.dead_letters(sub.queue)) == 1

            await eventually(dead, what="a dead letter")
        [dl] = await client.dead_letters(sub.queue)
    assert dl.reason == "timeout"
    assert dl.error is not None and "timed out" in dl.error.message
    assert [h.outcome for h in dl.history] == ["timeout", "timeout"]


@pytest.mark.usefixtures("allow_loopback")
async def test_push_connection_refused_is_a_failed_attempt(mem_url: str) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with AsyncClient(mem_url) as client:
        sub = await client.create_subscription(
            "t", "down", push_endpoint=f"http://127.0.0.1:{port}/", max_attempts=1
        )
        async with pushing(client):
            await client.publish("t", "x")

            async def dead() -> bool:
                return len(await client.dead_letters(sub.queue)) == 1

            await eventually(dead, what="a dead letter")
        [dl] = await client.dead_letters(sub.queue)
    assert dl.error is not None and "ConnectError" in dl.error.message


async def test_slow_endpoint_does_not_hold_up_another(
    mem_url: str, receiver: Receiver
) -> None:
    receiver.gate = threading.Event()  # requests to /slow wait for it
    async with AsyncClient(mem_url) as client:
        await client.create_subscription(
            "e", "slow", push_endpoint=receiver.endpoint("/slow")
        )
        await client.create_subscription(
            "e", "fast", push_endpoint=receiver.endpoint("/fast")
        )
        async with pushing(client, concurrency=1):
            for i in range(5):
                await client.publish("e", {"n": i})
            await eventually(lambda: receiver.count("/slow") == 1, what="a slow push")
            await eventually(lambda: receiver.count("/fast") == 5, what="fast pushes")
            assert receiver.count("/slow") == 1  # still stuck on its first
            receiver.gate.set()
            await eventually(lambda: receiver.count("/slow") == 5, what="slow pushes")


async def test_concurrency_limit_per_subscription(
    mem_url: str, receiver: Receiver
) -> None:
    receiver.gate = threading.Event()
    async with AsyncClient(mem_url) as client:
        await client.create_subscription(
            "e", "s", push_endpoint=receiver.endpoint("/slow")
        )
        async with pushing(client, concurrency=2):
            for i in range(6):
                await client.publish("e", {"n": i})
            await eventually(lambda: receiver.in_flight == 2, what="two requests")
            await anyio.sleep(0.3)  # room for a third request, were it allowed
            assert receiver.count() == 2
            receiver.gate.set()
            await eventually(lambda: receiver.count() == 6, what="all pushes")
    assert receiver.max_in_flight == 2


async def test_two_pushers_share_the_work(any_url: str, receiver: Receiver) -> None:
    async with AsyncClient(any_url) as one, AsyncClient(any_url) as two:
        sub = await one.create_subscription("e", "s", push_endpoint=receiver.endpoint())
        async with pushing(one), pushing(two):
            for i in range(20):
                await one.publish("e", {"n": i})
            await eventually(lambda: receiver.count() >= 20, what="twenty pushes")
            await eventually(depth(one, sub.queue), what="the acks")
    ids = [r.headers["ce-id"] for r in receiver.got()]
    assert len(ids) == 20 and len(set(ids)) == 20


async def test_pusher_discovers_new_and_forgets_deleted_subscriptions(
    mem_url: str, receiver: Receiver
) -> None:
    async with AsyncClient(mem_url) as client, pushing(client) as pusher:
        assert pusher.subscriptions == []
        await client.create_subscription("e", "late", push_endpoint=receiver.endpoint())
        await client.create_subscription("e", "pull")  # no endpoint: not pushed
        await eventually(lambda: len(pusher.subscriptions) == 1, what="discovery")
        await client.publish("e", "hello")
        await eventually(lambda: receiver.count() == 1, what="a push")
        await client.delete_subscription("e", "late")
        await eventually(lambda: pusher.subscriptions == [], what="forgetting")


async def test_run_pusher_by_url_stops_on_event(
    mem_url: str, receiver: Receiver
) -> None:
    stop = anyio.Event()
    async with AsyncClient(mem_url) as client:
        await client.create_subscription("e", "s", push_endpoint=receiver.endpoint())
        await client.publish("e", "one")
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: run_pusher(mem_url, stop=stop, refresh=0.1))
                await eventually(lambda: receiver.count() == 1, what="a push")
                stop.set()


async def test_worker_with_push_delivers_push_subscriptions(
    mem_url: str, receiver: Receiver
) -> None:
    from postroom.runtime.worker import Worker

    app = postroom.App(mem_url)
    received: list[object] = []

    @app.subscriber("e", subscription="inproc")
    async def handle(event: dict[str, int]) -> None:
        received.append(event)

    async with AsyncClient(mem_url) as client:
        await client.create_subscription("e", "hook", push_endpoint=receiver.endpoint())
        worker = Worker(app, client=client, push=True, grace=1.0)
        with anyio.fail_after(15):
            async with anyio.create_task_group() as tg:
                await tg.start(worker.run)
                await client.publish("e", {"n": 1})
                await eventually(lambda: receiver.count() == 1, what="the push")
                await eventually(lambda: received == [{"n": 1}], what="the handler")
                worker.stop()
