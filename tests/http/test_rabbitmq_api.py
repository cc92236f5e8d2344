"""The HTTP API on RabbitMQ: a receive and its ack, retry or extend arrive in
separate requests, and the server process holds the lease between them (AMQP ties
an unacked delivery to the channel that received it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import require_service
from tests.http.conftest import Server, start_server, stop_server


@pytest.fixture
def rabbit(tmp_path: Path) -> Iterator[Server]:
    require_service("rabbitmq", "127.0.0.1", 5672)
    prefix = "h" + uuid.uuid4().hex[:12]
    url = f"amqp://guest:guest@127.0.0.1:5672/?prefix={prefix}"
    srv = start_server(tmp_path, url=url)
    try:
        yield srv
    finally:
        stop_server(srv)
        from tests.rabbitmq import delete_prefixes

        delete_prefixes([prefix])


def _receive(http: httpx.Client, **kw: Any) -> list[dict[str, Any]]:
    resp = http.post("/v1/queues/jobs/receive", json=kw)
    assert resp.status_code == 200, resp.text
    messages: list[dict[str, Any]] = resp.json()["messages"]
    return messages


def test_rabbitmq_receive_then_ack_retry_extend_in_later_requests(
    rabbit: Server,
) -> None:
    with rabbit.client() as http:
        for n in range(2):
            resp = http.post("/v1/queues/jobs/messages", json={"body": {"n": n}})
            assert resp.status_code == 201, resp.text
        first, second = _receive(http, max_messages=2, wait=2)
        assert _receive(http) == []  # both leased by the server process
        resp = http.post(
            "/v1/queues/jobs/extend", json={"receipt": first["receipt"], "seconds": 60}
        )
        assert resp.status_code == 200, resp.text
        ack = {"receipt": first["receipt"], "id": first["id"]}
        assert http.post("/v1/queues/jobs/ack", json=ack).json() == {"ok": True}
        retry = {"receipt": second["receipt"], "delay": 0, "error": "flaky"}
        assert http.post("/v1/queues/jobs/retry", json=retry).status_code == 200
        [again] = _receive(http, wait=2)
        assert (again["id"], again["attempts"]) == (second["id"], 2)
        ack = {"receipt": again["receipt"], "id": again["id"]}
        assert http.post("/v1/queues/jobs/ack", json=ack).json() == {"ok": True}
        stats = http.get("/v1/queues/jobs").json()
        assert (stats["ready"], stats["in_flight"], stats["dead"]) == (0, 0, 0)
        assert stats["counters"]["acked"] == 2
