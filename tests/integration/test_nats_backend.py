"""NATS specifics: leases of any length over one AckWait per consumer, receipts
acted on by another process's client, dedup keys, dead letters with their
payload, and the URL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import postroom
from postroom.backends.nats import NatsBackend
from tests.contract.conftest import _nats, _redis_cleanup

__all__ = ["_redis_cleanup"]


@pytest.fixture
def url(tmp_path: Path) -> str:
    import uuid

    return _nats(tmp_path, "t" + uuid.uuid4().hex[:12])


@pytest.fixture
def client(url: str) -> Iterator[postroom.Client]:
    with postroom.connect(url) as c:
        yield c


def test_lease_longer_than_ack_wait_is_kept_by_in_progress_acks(
    client: postroom.Client, url: str
) -> None:
    client.declare_queue("q", visibility_timeout=0.4)  # the consumer's AckWait
    client.send("q", "x")
    [d] = client.receive("q", visibility_timeout=2.0)
    time.sleep(1.2)  # three AckWaits: only in-progress acks keep it leased
    with postroom.connect(url) as other:
        assert other.receive("q") == []
    client.ack(d)
    assert client.stats("q").in_flight == 0


def test_extend_past_ack_wait_keeps_the_lease(client: postroom.Client) -> None:
    client.declare_queue("q", visibility_timeout=0.4)
    client.send("q", "x")
    [d] = client.receive("q")
    d = client.extend(d, 1.5)
    time.sleep(1.0)
    assert client.receive("q") == []
    client.ack(d)


def test_lease_of_a_closed_client_comes_back_after_ack_wait(
    client: postroom.Client, url: str
) -> None:
    client.declare_queue("q", visibility_timeout=0.5)
    mid = client.send("q", "x")
    with postroom.connect(url) as crashed:
        [d] = crashed.receive("q", visibility_timeout=60)
    # The holder is gone: no more in-progress acks, the server's AckWait ends it.
    [again] = client.receive("q", wait=5.0)
    assert (again.id, again.attempts) == (mid, 2)
    assert d.id == mid


def test_a_lease_that_ended_counts_as_ready_until_taken_again(
    client: postroom.Client, url: str
) -> None:
    """SPEC §2 stats: the consumer counts a NAKed delivery as a pending ack until it
    is delivered again; its mark makes it ready, for every client."""
    client.send("q", "x")
    [d] = client.receive("q", visibility_timeout=0.3)
    with postroom.connect(url) as other:
        assert (other.stats("q").ready, other.stats("q").in_flight) == (0, 1)
        time.sleep(0.4)  # the lease ends: its holder NAKs it
        deadline = time.monotonic() + 5.0
        while other.stats("q").ready == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        st = other.stats("q")
        assert (st.ready, st.in_flight) == (1, 0)
        [again] = other.receive("q")
        assert (again.id, again.attempts) == (d.id, 2)
        st = client.stats("q")
        assert (st.ready, st.in_flight) == (0, 1)
        other.ack(again)
    st = client.stats("q")
    assert (st.ready, st.in_flight) == (0, 0)


def test_a_receipt_is_acked_by_another_client(
    client: postroom.Client, url: str
) -> None:
    client.send("q", "x")
    [d] = client.receive("q")
    with postroom.connect(url) as other:
        other.ack(d)
        with pytest.raises(postroom.LeaseLost):
            other.ack(d)  # it is gone from the stream
    assert client.stats("q").in_flight == 0


def test_a_receipt_of_another_queue_is_lease_lost(client: postroom.Client) -> None:
    client.send("a", "x")
    client.send("b", "y")
    [da] = client.receive("a")
    [db] = client.receive("b")
    forged = replace(db, receipt=da.receipt)
    with pytest.raises(postroom.LeaseLost):
        client.ack(forged)
    client.ack(da)
    client.ack(db)


def test_dedup_key_is_known_past_its_window_while_the_message_is_queued(
    client: postroom.Client,
) -> None:
    client.declare_queue("q", dedup_window=0.1)
    first = client.send("q", 1, dedup_key="k")
    time.sleep(0.3)
    assert client.send("q", 2, dedup_key="k") == first
    client.ack(client.receive("q")[0])
    assert client.send("q", 3, dedup_key="k") != first


def test_dead_letter_keeps_payload_headers_and_history(client: postroom.Client) -> None:
    client.declare_queue("q", max_attempts=2)
    mid = client.send("q", b"\x00raw", headers={"h": "v"})
    client.retry(client.receive("q")[0], delay=0, error=ValueError("one"))
    client.retry(client.receive("q", wait=2.0)[0], error=ValueError("two"))
    with postroom.connect(client.url) as other:
        [dl] = other.dead_letters("q")
    assert (dl.id, dl.message.body, dl.message.headers["h"]) == (mid, b"\x00raw", "v")
    assert [h.error.message for h in dl.history if h.error] == ["one", "two"]
    assert dl.reason == "failed" and dl.attempts == 2


def test_url_prefix_and_servers() -> None:
    backend = NatsBackend("nats://127.0.0.1:4222?prefix=app1")
    assert backend.names.stream("q").startswith("app1_Q_")
    assert backend.jet.servers == ["nats://127.0.0.1:4222"]
    assert NatsBackend("nats://a,b:4223").jet.servers == [
        "nats://a:4222",
        "nats://b:4223",
    ]
    with pytest.raises(postroom.ConfigurationError, match="prefix"):
        NatsBackend("nats://127.0.0.1:4222?prefix=bad.prefix")


def test_http_api_receive_and_ack_across_requests(url: str, tmp_path: Path) -> None:
    from tests.http.conftest import start_server, stop_server

    server = start_server(tmp_path, url=url)
    try:
        with server.client() as http:
            sent = http.post("/v1/queues/jobs/messages", json={"body": {"n": 1}})
            assert sent.status_code in (200, 201), sent.text
            got = http.post("/v1/queues/jobs/receive", json={"visibility_timeout": 5})
            [m] = got.json()["messages"]
            ext = {"receipt": m["receipt"], "id": m["id"], "seconds": 10}
            extended = http.post("/v1/queues/jobs/extend", json=ext)
            assert extended.status_code == 200, extended.text
            receipt = extended.json().get("receipt", m["receipt"])
            ack = {"receipt": receipt, "id": m["id"]}
            assert http.post("/v1/queues/jobs/ack", json=ack).json() == {"ok": True}
            assert http.post("/v1/queues/jobs/ack", json=ack).status_code == 409
    finally:
        stop_server(server)
    with postroom.connect(url) as c:
        st = c.stats("jobs")
        assert (st.ready, st.in_flight, st.dead) == (0, 0, 0)


def test_redrive_interrupted_between_store_and_delete_loses_nothing(
    client: postroom.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.declare_queue("q", max_attempts=1)
    mid = client.send("q", "x")
    client.reject(client.receive("q")[0], error="poison")
    backend = client.aclient.backend
    assert isinstance(backend, NatsBackend)

    async def crash(stream: str, seq: int) -> None:
        raise postroom.BackendError("the process died here")

    monkeypatch.setattr(backend.jet, "delete_msg", crash)
    with pytest.raises(postroom.BackendError):
        client.redrive("q")
    # Interrupted: in both places (at-least-once), never in none.
    assert [m.id for m in client.peek("q")] == [mid]
    assert [d.id for d in client.dead_letters("q")] == [mid]
    monkeypatch.undo()
    assert client.redrive("q") == [mid]  # run again: finishes, stores no second copy
    assert [m.id for m in client.peek("q")] == [mid]
    assert client.dead_letters("q") == []
