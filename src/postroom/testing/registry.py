"""The worker registry on every backend that declares one
(``capabilities.worker_registry``): heartbeats stored, replaced, aged out,
removed; a backend without one raises ``NotSupported`` (the test says so and
skips)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import postroom
from postroom import Client
from postroom.model.workers import WorkerInfo

from .workers import running, wait_until


def _requires_registry(client: Client) -> None:
    if not client.aclient.capabilities.worker_registry:
        with pytest.raises(postroom.NotSupported):
            client.workers()
        pytest.skip("this backend keeps no worker registry (NotSupported, declared)")


def _info(worker_id: str, *, handled: int = 0, heartbeat: float = 10.0) -> WorkerInfo:
    now = datetime.now(UTC).replace(microsecond=123000)
    return WorkerInfo(
        id=worker_id,
        host="host-a",
        pid=4242,
        queues=("images.resize", "mail"),
        concurrency=8,
        in_flight=2,
        handled=handled,
        failed=1,
        started_at=now,
        last_seen=now,
        heartbeat=heartbeat,
    )


def test_registry_keeps_the_last_heartbeat_of_each_worker(client: Client) -> None:
    _requires_registry(client)
    assert client.workers() == []
    client.put_worker(_info("w1", handled=1))
    client.put_worker(_info("w2"))
    client.put_worker(_info("w1", handled=7))
    found = {w.id: w for w in client.workers()}
    assert sorted(found) == ["w1", "w2"]
    assert found["w1"] == _info("w1", handled=7)  # every field, times to the ms
    client.delete_worker("w1")
    client.delete_worker("never-registered")
    assert [w.id for w in client.workers()] == ["w2"]


def test_registry_ages_out_a_worker_that_stopped_beating(client: Client) -> None:
    _requires_registry(client)
    client.put_worker(_info("gone", heartbeat=0.05))  # expires 0.15 s later
    client.put_worker(_info("alive"))
    wait_until(lambda: [w.id for w in client.workers()] == ["alive"])


def test_running_worker_registers_and_leaves(client: Client, url: str) -> None:
    _requires_registry(client)
    app = postroom.App(url)

    @app.handler("jobs", concurrency=3)
    def handle(body: dict[str, int]) -> None:
        if body["n"] == 0:
            raise postroom.Reject("zero")

    client.send_many("jobs", [{"n": 0}, {"n": 1}, {"n": 2}])
    with running(app, url, heartbeat=0.05) as worker:
        wait_until(lambda: client.stats("jobs").dead == 1)

        def counted() -> bool:
            found = client.workers()
            return len(found) == 1 and (
                found[0].handled,
                found[0].failed,
                found[0].in_flight,
            ) == (2, 1, 0)

        wait_until(counted)
        [me] = client.workers()
        assert me.queues == ("jobs",) and me.concurrency == 3
        assert me.id == worker.heartbeat.worker_id
    assert client.workers() == []  # a clean stop removes the record
