"""The worker runtime (SPEC §2.5, §2.6, §2.8, §2.13, §2.15) on every backend.

Each test runs a :class:`postroom.runtime.worker.Worker` in-process, on an event
loop in a helper thread, against a fresh backend, and watches the outcome with a
sync client.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import pydantic
import pytest
from anyio.from_thread import start_blocking_portal

import postroom
from postroom import Client
from postroom.runtime.worker import Worker

NO_BACKOFF = postroom.Backoff(initial=0.0, jitter=False)


class Resize(pydantic.BaseModel):
    image: str
    width: int


@dataclasses.dataclass
class Thumb:
    image: str
    sizes: list[int]


@contextmanager
def running(app: postroom.App, url: str, **options: Any) -> Iterator[Worker]:
    """Run ``app`` on ``url`` in a background event loop until the block ends."""
    with start_blocking_portal() as portal:
        worker = Worker(app, url=url, **options)
        future, _ = portal.start_task(worker.run)
        try:
            yield worker
        finally:
            portal.call(worker.stop)
            future.result(timeout=20)


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(0.02)


def settled(client: Client, queue: str) -> bool:
    st = client.stats(queue)
    return st.ready == st.delayed == st.in_flight == 0


def test_worker_decodes_every_body_type(client: Client, url: str) -> None:
    app = postroom.App(url)
    got: dict[str, Any] = {}

    @app.handler("models")
    async def on_model(job: Resize) -> None:
        got["models"] = job

    @app.handler("dataclasses")
    def on_dataclass(job: Thumb) -> None:
        got["dataclasses"] = job

    @app.handler("dicts")
    async def on_dict(job: dict[str, int]) -> None:
        got["dicts"] = job

    @app.handler("bytes")
    def on_bytes(body: bytes) -> None:
        got["bytes"] = body

    @app.handler("messages")
    async def on_message(msg: postroom.Message) -> None:
        got["messages"] = msg

    client.send("models", Resize(image="cat.png", width=64))
    client.send("dataclasses", Thumb(image="dog.png", sizes=[32, 64]))
    client.send("dicts", {"a": 1, "b": 2})
    client.send("bytes", b"\x00\xffraw")
    mid = client.send("messages", {"k": "v"}, headers={"trace": "t1"})
    with running(app, url):
        wait_until(lambda: len(got) == 5)
        for queue in got:
            wait_until(functools.partial(settled, client, queue))
    assert got["models"] == Resize(image="cat.png", width=64)
    assert got["dataclasses"] == Thumb(image="dog.png", sizes=[32, 64])
    assert got["dicts"] == {"a": 1, "b": 2}
    assert got["bytes"] == b"\x00\xffraw"
    msg = got["messages"]
    assert isinstance(msg, postroom.Message)
    assert (msg.id, msg.json(), msg.headers["trace"]) == (mid, {"k": "v"}, "t1")
    assert msg.attempts == 1


def test_worker_retry_signal_retries_after_its_delay(client: Client, url: str) -> None:
    app = postroom.App(url)
    seen: list[tuple[int, float]] = []

    @app.handler("q")
    async def handle(msg: postroom.Message) -> None:
        seen.append((msg.attempts, time.monotonic()))
        if msg.attempts == 1:
            raise postroom.Retry(delay=0.4)

    client.send("q", {"n": 1})
    with running(app, url):
        wait_until(lambda: len(seen) == 2 and settled(client, "q"))
    assert [a for a, _ in seen] == [1, 2]
    assert seen[1][1] - seen[0][1] >= 0.35
    assert client.stats("q").dead == 0


def test_worker_retry_signal_dead_letters_when_attempts_are_used_up(
    client: Client, url: str
) -> None:
    client.declare_queue("q", max_attempts=2, backoff=NO_BACKOFF)
    app = postroom.App(url)

    @app.handler("q")
    def handle(body: Any) -> None:
        raise postroom.Retry(delay=0)

    client.send("q", {"n": 1})
    with running(app, url):
        wait_until(lambda: client.stats("q").dead == 1)
    [dead] = client.dead_letters("q")
    assert dead.reason == "failed"
    assert dead.attempts == 2
    assert [h.outcome for h in dead.history] == ["failed", "failed"]
    assert dead.error is not None and dead.error.type == "Retry"


def test_worker_reject_dead_letters_at_once(client: Client, url: str) -> None:
    app = postroom.App(url)

    @app.handler("q")
    async def handle(body: Any) -> None:
        raise postroom.Reject("image is corrupt")

    mid = client.send("q", {"image": "broken.png"})
    with running(app, url):
        wait_until(lambda: client.stats("q").dead == 1)
    [dead] = client.dead_letters("q")
    assert (dead.id, dead.reason, dead.attempts) == (mid, "rejected", 1)
    assert dead.error is not None and dead.error.message == "image is corrupt"


def test_worker_exception_retries_with_backoff_then_dead_letters(
    client: Client, url: str
) -> None:
    client.declare_queue("q", max_attempts=3, backoff=NO_BACKOFF)
    app = postroom.App(url)
    calls: list[int] = []

    @app.handler("q")
    def handle(msg: postroom.Message) -> None:
        calls.append(msg.attempts)
        raise ValueError(f"disk full on attempt {msg.attempts}")

    client.send("q", {"n": 1})
    with running(app, url):
        wait_until(lambda: client.stats("q").dead == 1)
    assert calls == [1, 2, 3]
    [dead] = client.dead_letters("q")
    assert (dead.reason, dead.attempts) == ("failed", 3)
    assert dead.error is not None
    assert dead.error.type == "ValueError"
    assert dead.error.message == "disk full on attempt 3"
    assert "raise ValueError" in dead.error.traceback
    assert [h.outcome for h in dead.history] == ["failed"] * 3


def test_worker_undecodable_body_dead_letters_and_worker_keeps_running(
    client: Client, url: str
) -> None:
    app = postroom.App(url)
    done: list[Resize] = []

    @app.handler("q")
    async def handle(job: Resize) -> None:
        done.append(job)

    bad_json = client.send("q", b"\xff not json")
    bad_shape = client.send("q", {"image": "cat.png", "width": "wide"})
    client.send("q", {"image": "cat.png", "width": 10})
    with running(app, url):
        wait_until(lambda: len(done) == 1 and client.stats("q").dead == 2)
        client.send("q", {"image": "dog.png", "width": 20})
        wait_until(lambda: len(done) == 2 and settled(client, "q"))
    assert [j.image for j in done] == ["cat.png", "dog.png"]
    dead = {d.id: d for d in client.dead_letters("q", reason="undecodable")}
    assert set(dead) == {bad_json, bad_shape}
    errors = {}
    for d in dead.values():
        assert d.error is not None and d.error.type == "DecodeError"
        assert d.attempts == 1
        errors[d.id] = d.error.message
    assert "Invalid JSON" in errors[bad_json]
    assert "width" in errors[bad_shape] and "valid integer" in errors[bad_shape]


def test_worker_async_handler_timeout_dead_letters_with_reason_timeout(
    client: Client, url: str
) -> None:
    client.declare_queue("q", max_attempts=2, backoff=NO_BACKOFF)
    app = postroom.App(url)

    @app.handler("q", timeout=0.2)
    async def handle(body: Any) -> None:
        await anyio.sleep(30)

    client.send("q", {"n": 1})
    with running(app, url):
        wait_until(lambda: client.stats("q").dead == 1)
    [dead] = client.dead_letters("q")
    assert (dead.reason, dead.attempts) == ("timeout", 2)
    assert [h.outcome for h in dead.history] == ["timeout", "timeout"]
    assert dead.error is not None and dead.error.type == "TimeoutError"
    assert "0.2 s" in dead.error.message


def test_worker_sync_handler_timeout_dead_letters_with_reason_timeout(
    client: Client, url: str
) -> None:
    client.declare_queue("q", max_attempts=1)
    app = postroom.App(url)
    unblock = threading.Event()

    @app.handler("q", timeout=0.2)
    def handle(body: Any) -> None:
        unblock.wait(10)

    client.send("q", {"n": 1})
    try:
        with running(app, url) as worker:
            wait_until(lambda: client.stats("q").dead == 1)
            assert worker.abandoned_threads == 1
    finally:
        unblock.set()
    [dead] = client.dead_letters("q")
    assert (dead.reason, dead.attempts) == ("timeout", 1)


@pytest.mark.slow
def test_worker_extends_lease_of_slow_handler(client: Client, url: str) -> None:
    client.declare_queue("q", visibility_timeout=1.0)
    app = postroom.App(url)
    calls: list[int] = []

    @app.handler("q")
    async def handle(msg: postroom.Message) -> None:
        calls.append(msg.attempts)
        await anyio.sleep(2.5)  # well past the visibility timeout

    client.send("q", {"n": 1})
    with running(app, url):
        wait_until(lambda: calls == [1])
        time.sleep(1.8)
        assert client.receive("q") == []  # still leased by the worker
        assert client.stats("q").in_flight == 1
        wait_until(lambda: settled(client, "q"))
    assert calls == [1]
    assert client.stats("q").dead == 0


def test_worker_prefetch_is_bounded_by_concurrency(client: Client, url: str) -> None:
    app = postroom.App(url)
    in_flight: list[int] = []
    done: list[int] = []

    @app.handler("q", concurrency=4)
    def handle(body: dict[str, int]) -> None:
        in_flight.append(client.stats("q").in_flight)
        time.sleep(0.05)
        done.append(body["n"])

    client.send_many("q", [{"n": i} for i in range(20)])
    with running(app, url):
        wait_until(lambda: len(done) == 20 and settled(client, "q"))
    assert sorted(done) == list(range(20))
    assert max(in_flight) <= 4


def test_worker_concurrency_option_overrides_the_handlers(
    client: Client, url: str
) -> None:
    app = postroom.App(url)
    running_now: list[int] = []
    peak: list[int] = [0]
    lock = threading.Lock()

    @app.handler("q", concurrency=1)
    def handle(body: Any) -> None:
        with lock:
            running_now.append(1)
            peak[0] = max(peak[0], len(running_now))
        time.sleep(0.5)
        with lock:
            running_now.pop()

    client.send_many("q", [{"n": i} for i in range(3)])
    with running(app, url, concurrency=3):
        wait_until(lambda: settled(client, "q"))
    assert peak[0] == 3


def test_worker_stop_lets_running_handlers_finish_within_grace(
    client: Client, url: str
) -> None:
    app = postroom.App(url)
    started = threading.Event()
    finished: list[str] = []

    @app.handler("q")
    async def handle(body: Any) -> None:
        started.set()
        await anyio.sleep(0.5)
        finished.append("done")

    client.send("q", {"n": 1})
    with running(app, url, grace=10.0):
        assert started.wait(10)
    assert finished == ["done"]
    assert settled(client, "q")


def test_worker_stop_releases_unfinished_without_counting_an_attempt(
    client: Client, url: str
) -> None:
    app = postroom.App(url)
    started = threading.Event()

    @app.handler("q")
    async def handle(body: Any) -> None:
        started.set()
        await anyio.sleep(30)

    mid = client.send("q", {"n": 1})
    with running(app, url, grace=0.2):
        assert started.wait(10)
    st = client.stats("q")
    assert (st.ready, st.in_flight, st.dead) == (1, 0, 0)
    [msg] = client.peek("q")
    assert (msg.id, msg.attempts) == (mid, 0)
    assert client.receive("q")[0].attempts == 1


def test_worker_subscriber_creates_its_subscription(client: Client, url: str) -> None:
    app = postroom.App(url)
    events: list[dict[str, str]] = []

    @app.subscriber("images.resized", subscription="cache", max_attempts=2)
    async def warm(event: dict[str, str]) -> None:
        events.append(event)

    with running(app, url):
        [sub] = client.subscriptions("images.resized")
        assert (sub.name, sub.queue) == ("cache", "images.resized:cache")
        assert client.queue_policy(sub.queue).max_attempts == 2
        client.publish("images.resized", {"image": "cat.png"})
        wait_until(lambda: events == [{"image": "cat.png"}])


def test_worker_queues_option_selects_handlers(client: Client, url: str) -> None:
    app = postroom.App(url)
    seen: list[str] = []

    @app.handler("a")
    async def on_a(body: Any) -> None:
        seen.append("a")

    @app.handler("b")
    async def on_b(body: Any) -> None:
        seen.append("b")

    client.send("a", 1)
    client.send("b", 2)
    with running(app, url, queues=["b"]):
        wait_until(lambda: settled(client, "b"))
    assert seen == ["b"]
    assert client.stats("a").ready == 1
    with pytest.raises(postroom.ConfigurationError, match="'c'"):
        Worker(app, url=url, queues=["c"])
