"""The defaults a user gets without tuning: handler concurrency, worker processes."""

from __future__ import annotations

import os

import postroom
from postroom import AsyncClient
from postroom.cli.worker import MAX_DEFAULT_PROCESSES, default_processes
from postroom.runtime.app import ASYNC_CONCURRENCY, THREAD_CONCURRENCY


def test_handler_concurrency_defaults_by_kind_and_stays_settable() -> None:
    app = postroom.App("memory://defaults")

    @app.handler("a")
    async def a(body: dict[str, int]) -> None: ...

    @app.handler("t")
    def t(body: dict[str, int]) -> None: ...

    @app.handler("one", concurrency=1)
    async def one(body: dict[str, int]) -> None: ...

    @app.subscriber("topic", subscription="s")
    async def sub(body: dict[str, int]) -> None: ...

    got = {q: spec.concurrency for q, spec in app.handlers.items()}
    assert got == {
        "a": ASYNC_CONCURRENCY,
        "t": THREAD_CONCURRENCY,
        "one": 1,
        "topic:s": ASYNC_CONCURRENCY,
    }


def test_worker_processes_default_to_cpus_and_one_in_memory() -> None:
    assert default_processes(AsyncClient("memory://x")) == 1
    n = default_processes(AsyncClient("sqlite:///postroom.db"))
    assert n == max(1, min(len(os.sched_getaffinity(0)), MAX_DEFAULT_PROCESSES))
