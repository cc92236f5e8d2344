"""Periodic jobs and typed sends (SPEC §9, "Time and order") on every backend.

Workers run in-process, as in :mod:`postroom.testing.workers`.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import anyio
import pytest

import postroom
from postroom import Client
from postroom.testing.workers import Resize, running, settled, wait_until


def test_periodic_tick_runs_once_across_two_workers(client: Client, url: str) -> None:
    app = postroom.App(url)
    ticks: list[datetime] = []
    plain: list[int] = []
    lock = threading.Lock()

    @app.periodic("beat", every=1)
    def beat(tick: datetime) -> None:
        with lock:
            ticks.append(tick)

    @app.periodic("plain", every=1.0)
    async def no_argument() -> None:
        plain.append(1)

    with running(app, url), running(app, url):
        wait_until(lambda: len(ticks) >= 3 and len(plain) >= 2, timeout=30)
    assert len(ticks) == len(set(ticks)), ticks
    assert all(t.tzinfo is not None and t.microsecond == 0 for t in ticks), ticks
    assert "postroom.periodic.beat" in client.queues()


def test_periodic_rejects_bad_arguments(url: str) -> None:
    app = postroom.App(url)
    with pytest.raises(postroom.InvalidArgument, match="exactly one"):
        app.periodic("x")
    with pytest.raises(postroom.InvalidArgument, match="every"):
        app.periodic("x", every=0)
    with pytest.raises(postroom.InvalidArgument, match="name"):
        app.periodic("has space", every=5)
    with pytest.raises(postroom.InvalidArgument, match="cron"):
        app.periodic("x", cron="* * *")
    with pytest.raises(postroom.ConfigurationError, match="no argument or one"):
        app.periodic("x", every=5)(lambda a, b: None)


def test_typed_send_checks_the_body_and_sends(client: Client, url: str) -> None:
    app = postroom.App(url)
    got: list[Any] = []

    @app.handler("resize")
    def resize(job: Resize) -> str:
        got.append(job)
        return job.image

    assert resize(Resize(image="direct", width=1)) == "direct"  # still the function
    got.clear()
    try:
        resize.send({"image": "cat.png", "width": 64}, headers={"h": "1"})  # type: ignore[arg-type]
        with pytest.raises(postroom.InvalidArgument, match="Resize"):
            resize.send({"image": "cat.png", "width": "wide"})  # type: ignore[arg-type]
        assert client.stats("resize").ready == 1  # the refused body left nothing
        first = resize.send(Resize(image="dog.png", width=8), dedup_key="k")
        assert resize.send(Resize(image="dog.png", width=8), dedup_key="k") == first
    finally:
        app.close()
    with running(app, url):
        wait_until(lambda: len(got) == 2)
        wait_until(lambda: settled(client, "resize"))
    assert sorted(j.image for j in got) == ["cat.png", "dog.png"]


def test_typed_send_async_and_subscriber_publish(client: Client, url: str) -> None:
    app = postroom.App(url)

    @app.handler("texts")
    async def text(body: str) -> None: ...

    @app.subscriber("events", subscription="audit")
    def audit(event: dict[str, int]) -> None: ...

    client.create_subscription("events", "audit")

    async def main() -> None:
        try:
            await text.send_async("hello", delay=None)
            with pytest.raises(postroom.InvalidArgument):
                await text.send_async(["not", "text"])  # type: ignore[arg-type]
            await audit.send_async({"n": 1})
            with pytest.raises(postroom.InvalidArgument, match="headers only"):
                await audit.send_async({"n": 2}, delay=1)
        finally:
            await app.aclose()

    anyio.run(main)
    [msg] = client.receive("texts")
    assert msg.message.body == b'"hello"'
    [event] = client.receive("events:audit")
    assert event.message.json() == {"n": 1}
    with pytest.raises(postroom.InvalidArgument, match="dict"):
        audit.send({"n": "x"})  # type: ignore[dict-item]
    app.close()
