"""``GET /v1/workers``: registered worker processes, admin scope, token patterns."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import postroom
from postroom.model.workers import WorkerInfo
from tests.conftest import require_service

from .conftest import ADMIN, OPS, SENDER, Server, start_server, stop_server


def _register(server: Server, *queues: str) -> str:
    wid = f"host-t:{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    info = WorkerInfo(wid, "host-t", 99, queues, 4, 1, 10, 2, now, now, 30.0)
    with postroom.connect(server.url) as client:
        client.put_worker(info)
    return wid


def test_workers_lists_heartbeats_for_admins(secured: Server) -> None:
    suffix = uuid.uuid4().hex[:8]
    mixed = _register(secured, f"orders.{suffix}", f"billing.{suffix}")
    other = _register(secured, f"billing.{suffix}")
    with secured.client(ADMIN) as admin:
        resp = admin.get("/v1/workers")
        assert resp.status_code == 200, resp.text
        found = {w["id"]: w for w in resp.json()["workers"]}
    assert {mixed, other} <= set(found)
    w = found[mixed]
    assert (w["host"], w["pid"], w["concurrency"]) == ("host-t", 99, 4)
    assert (w["in_flight"], w["handled"], w["failed"]) == (1, 10, 2)
    assert w["last_seen"].endswith("Z") or "+00:00" in w["last_seen"]
    with secured.client(OPS) as ops:  # admin of orders.* only
        seen = {w["id"]: w for w in ops.get("/v1/workers").json()["workers"]}
    assert other not in seen
    assert seen[mixed]["queues"] == [f"orders.{suffix}"]
    with secured.client(SENDER) as sender:
        assert sender.get("/v1/workers").status_code == 403


def test_workers_on_rabbitmq_are_seen_by_every_process(tmp_path: Path) -> None:
    """RabbitMQ keeps the registry in its live stream: the server (another
    process) lists a worker this process registered, until it is deleted."""
    require_service("rabbitmq", "127.0.0.1", 5672)
    prefix = "w" + uuid.uuid4().hex[:12]
    url = f"amqp://guest:guest@127.0.0.1:5672/?prefix={prefix}"
    srv = start_server(tmp_path, url=url)
    try:
        now = datetime.now(UTC)
        info = WorkerInfo(
            "host-r:1", "host-r", 7, ("jobs",), 4, 0, 3, 0, now, now, 30.0
        )
        with postroom.connect(url) as client, srv.client() as http:
            client.put_worker(info)
            resp = http.get("/v1/workers")
            assert resp.status_code == 200, resp.text
            [seen] = resp.json()["workers"]
            assert (seen["id"], seen["pid"], seen["handled"]) == ("host-r:1", 7, 3)
            client.delete_worker("host-r:1")
            assert http.get("/v1/workers").json()["workers"] == []
    finally:
        stop_server(srv)
        from tests.rabbitmq import delete_prefixes

        delete_prefixes([prefix])
