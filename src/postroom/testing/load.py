"""A busy worker on every backend: many handlers in flight, no backend errors.

Not a speed test: it checks that a worker running 100 handlers at once, beside idle
consumers of other queues, takes every message to its end without one backend error
(a connection pool too small for the concurrency, a blocked wake-up) on the way.
"""

from __future__ import annotations

import logging

import pytest

import postroom
from postroom import Client

from .workers import NO_BACKOFF, running, wait_until


@pytest.mark.slow
def test_high_concurrency_failures_reach_dead_letters_without_backend_errors(
    client: Client, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client.declare_queue("fail", max_attempts=3, backoff=NO_BACKOFF)
    client.declare_queue("idle.a")
    client.declare_queue("idle.b")
    app = postroom.App(url)

    @app.handler("fail", concurrency=100)
    async def fail(body: bytes) -> None:
        raise RuntimeError("always fails")

    @app.handler("idle.a", concurrency=200)
    async def idle_a(body: bytes) -> None:
        pass

    @app.handler("idle.b")
    async def idle_b(body: bytes) -> None:
        pass

    caplog.set_level(logging.ERROR, logger="postroom")
    with running(app, url):
        client.send_many("fail", list(range(300)))
        wait_until(lambda: client.stats("fail").dead == 300, timeout=90)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
    assert len(client.dead_letters("fail", limit=1000)) == 300
