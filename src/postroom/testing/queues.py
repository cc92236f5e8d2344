"""SPEC §2 on every backend: leases, acks, retries, dead letters, redrive."""

from __future__ import annotations

import time

import anyio
import pytest

import postroom
from postroom import Client

SHORT = 0.3  # a lease short enough to expire inside a test


def receive_one(client: Client, queue: str, wait: float = 2.0) -> postroom.Delivery:
    got = client.receive(queue, wait=wait)
    assert len(got) == 1, f"expected one message on {queue}, got {got}"
    return got[0]


def test_send_returns_time_ordered_ids(client: Client) -> None:
    ids = [client.send("q", {"n": i}) for i in range(20)]
    assert len(set(ids)) == 20
    assert ids == sorted(ids)


def test_receive_leases_and_hides_message(client: Client) -> None:
    mid = client.send("q", {"image": "cat.png"}, headers={"trace": "abc"})
    d = receive_one(client, "q")
    assert d.id == mid
    assert d.message.json() == {"image": "cat.png"}
    assert d.headers["trace"] == "abc"
    assert d.attempts == 1
    assert d.receipt
    assert client.receive("q", max_messages=10) == []


def test_ack_deletes(client: Client) -> None:
    client.send("q", "x")
    d = receive_one(client, "q")
    client.ack(d)
    st = client.stats("q")
    assert (st.ready, st.in_flight, st.delayed, st.dead) == (0, 0, 0, 0)


def test_ack_after_lease_lost_raises_and_keeps_message(client: Client) -> None:
    client.send("q", "x")
    first = client.receive("q", visibility_timeout=SHORT)[0]
    time.sleep(SHORT + 0.2)
    second = receive_one(client, "q")
    assert second.id == first.id and second.attempts == 2
    with pytest.raises(postroom.LeaseLost):
        client.ack(first)
    with pytest.raises(postroom.LeaseLost):
        client.extend(first, 10)
    assert client.stats("q").in_flight == 1
    client.ack(second)
    assert client.stats("q").in_flight == 0


def test_retry_with_delay_hides_then_redelivers(client: Client) -> None:
    client.send("q", "x")
    d = receive_one(client, "q")
    client.retry(d, delay=0.5, error="temporary")
    assert client.receive("q") == []
    assert client.stats("q").delayed == 1
    d2 = receive_one(client, "q", wait=3.0)
    assert d2.id == d.id and d2.attempts == 2


def test_retry_default_delay_uses_backoff(client: Client) -> None:
    client.declare_queue(
        "q", backoff=postroom.Backoff(initial=0.4, factor=2, max=10, jitter=False)
    )
    client.send("q", "x")
    client.retry(receive_one(client, "q"))
    assert client.receive("q") == []
    assert receive_one(client, "q", wait=3.0).attempts == 2


def test_expired_lease_redelivers(client: Client) -> None:
    client.send("q", "x")
    d = client.receive("q", visibility_timeout=SHORT)[0]
    d2 = receive_one(client, "q", wait=3.0)
    assert d2.id == d.id and d2.attempts == 2


def test_attempts_exhausted_dead_letters_with_history(client: Client) -> None:
    client.declare_queue("q", max_attempts=3)
    mid = client.send("q", {"k": 1}, headers={"h": "v"})
    for n in range(3):
        d = receive_one(client, "q")
        assert d.attempts == n + 1
        client.retry(d, delay=0, error=ValueError(f"bad {n}"))
    assert client.receive("q") == []
    [dl] = client.dead_letters("q")
    assert dl.id == mid and dl.message.id == mid
    assert dl.queue == "q"
    assert dl.reason == "failed"
    assert dl.message.json() == {"k": 1} and dl.message.headers["h"] == "v"
    assert dl.error is not None and dl.error.type == "ValueError"
    assert dl.error.message == "bad 2"
    assert [h.outcome for h in dl.history] == ["failed"] * 3
    assert all(h.consumer for h in dl.history)
    assert dl.attempts == 3
    assert client.stats("q").dead == 1


def test_lease_expiry_counts_toward_max_attempts(client: Client) -> None:
    client.declare_queue("q", max_attempts=2, visibility_timeout=SHORT)
    client.send("q", "crashy")
    receive_one(client, "q")
    time.sleep(SHORT + 0.1)
    receive_one(client, "q")
    time.sleep(SHORT + 0.1)
    assert client.receive("q") == []
    [dl] = client.dead_letters("q")
    assert dl.reason == "lease_expired"
    assert [h.outcome for h in dl.history] == ["lease_expired", "lease_expired"]


def test_reject_dead_letters_at_once(client: Client) -> None:
    client.send("q", "poison")
    client.reject(receive_one(client, "q"), error="cannot parse")
    [dl] = client.dead_letters("q", reason="rejected")
    assert dl.error is not None and "cannot parse" in dl.error.message
    assert client.dead_letters("q", reason="failed") == []


def test_extend_keeps_lease(client: Client) -> None:
    client.send("q", "x")
    d = client.receive("q", visibility_timeout=SHORT)[0]
    d = client.extend(d, 5)
    time.sleep(SHORT + 0.2)
    assert client.receive("q") == []
    client.ack(d)


def test_send_delay_hides_until_due(client: Client) -> None:
    client.send("q", "later", delay=0.5)
    assert client.receive("q") == []
    assert client.stats("q").delayed == 1
    assert receive_one(client, "q", wait=3.0).message.text == '"later"'


def test_dedup_key_returns_first_id(client: Client) -> None:
    a = client.send("q", 1, dedup_key="order-7")
    b = client.send("q", 2, dedup_key="order-7")
    c = client.send("q", 3, dedup_key="order-8")
    assert a == b != c
    assert client.stats("q").ready == 2


def test_dedup_key_forgotten_after_window_and_ack(client: Client) -> None:
    client.declare_queue("q", dedup_window=0.2)
    a = client.send("q", 1, dedup_key="k")
    client.ack(receive_one(client, "q"))
    time.sleep(0.3)
    assert client.send("q", 1, dedup_key="k") != a


def test_send_many_and_receive_batch(client: Client) -> None:
    ids = client.send_many("q", [{"n": i} for i in range(25)])
    assert len(ids) == 25
    got = client.receive("q", max_messages=10)
    assert len(got) == 10
    assert {d.id for d in got} <= set(ids)


def test_long_poll_wakes_on_send(client: Client) -> None:
    import threading

    def later() -> None:
        time.sleep(0.3)
        with postroom.connect(client.url) as other:
            other.send("q", "woken")

    client.declare_queue("q")
    t = threading.Thread(target=later)
    t.start()
    got = client.receive("q", wait=5.0)
    t.join()
    assert [d.message.text for d in got] == ['"woken"']


def test_release_does_not_count_attempt(client: Client) -> None:
    client.send("q", "x")
    d = receive_one(client, "q")
    client.release([d])
    assert receive_one(client, "q").attempts == 1


def test_redrive_keeps_identity_and_resets_attempts(client: Client) -> None:
    client.declare_queue("q", max_attempts=1)
    mid = client.send("q", {"x": 1}, headers={"h": "1"})
    client.retry(receive_one(client, "q"), error="boom")
    assert client.redrive("q", dry_run=True) == [mid]
    assert client.stats("q").dead == 1
    assert client.redrive("q") == [mid]
    assert client.dead_letters("q") == []
    d = receive_one(client, "q")
    assert d.id == mid and d.headers["h"] == "1" and d.attempts == 1
    assert d.message.redrives == 1
    client.retry(d, error="again")
    [dl] = client.dead_letters("q")
    assert dl.message.redrives == 1


def test_redrive_by_ids_limit_and_target(client: Client) -> None:
    client.declare_queue("q", max_attempts=1)
    ids = client.send_many("q", list(range(5)))
    for d in client.receive("q", max_messages=5):
        client.reject(d, error="no")
    assert client.redrive("q", ids=[ids[0]]) == [ids[0]]
    assert len(client.redrive("q", limit=2, to="other")) == 2
    assert client.stats("other").ready == 2
    assert client.stats("q").dead == 2
    assert len(client.redrive("q", rate=100.0)) == 2
    assert client.stats("q").ready == 3


def test_dead_letter_filters(client: Client) -> None:
    client.declare_queue("q", max_attempts=1)
    client.send_many("q", ["a", "b"])
    a, b = client.receive("q", max_messages=2)
    client.retry(a, error=KeyError("missing watermark"))
    client.reject(b, error="corrupt image")
    assert [d.id for d in client.dead_letters("q", error_contains="watermark")] == [
        a.id
    ]
    assert [d.id for d in client.dead_letters("q", reason="rejected")] == [b.id]
    assert client.dead_letter("q", b.id).reason == "rejected"


def test_purge(client: Client) -> None:
    client.declare_queue("q", max_attempts=1)
    client.send_many("q", [1, 2, 3])
    client.reject(receive_one(client, "q"))
    assert client.purge("q") == 2
    assert client.purge("q", dead=True) == 1
    st = client.stats("q")
    assert (st.ready, st.dead) == (0, 0)


def test_unknown_queue_raises_queue_not_found(client: Client) -> None:
    for call in (
        lambda: client.receive("nope"),
        lambda: client.peek("nope"),
        lambda: client.dead_letters("nope"),
        lambda: client.redrive("nope"),
        lambda: client.purge("nope"),
        lambda: client.stats("nope"),
    ):
        with pytest.raises(postroom.QueueNotFound, match="nope"):
            call()


def test_declare_queue_is_idempotent_and_stored(client: Client) -> None:
    p1 = client.declare_queue("q", max_attempts=7, visibility_timeout=12.0)
    p2 = client.declare_queue("q", max_attempts=7, visibility_timeout=12.0)
    assert p1 == p2
    with postroom.connect(client.url) as other:
        stored = other.queue_policy("q")
        assert stored.max_attempts == 7 and stored.visibility_timeout == 12.0
        assert stored.dead_letter == "q.dead"
    assert "q" in client.queues()


def test_stats_counts_each_state(client: Client) -> None:
    client.declare_queue("q", max_attempts=1)
    client.send_many("q", [1, 2, 3])
    client.send("q", 4, delay=60)
    d = receive_one(client, "q")
    client.reject(receive_one(client, "q"))
    st = client.stats()["q"]
    assert (st.ready, st.delayed, st.in_flight, st.dead) == (1, 1, 1, 1)
    assert st.oldest_age is not None and st.oldest_age >= 0
    client.ack(d)


def test_peek_does_not_lease(client: Client) -> None:
    ids = client.send_many("q", ["a", "b"])
    assert [m.id for m in client.peek("q")] == ids
    assert len(client.receive("q", max_messages=2)) == 2


def test_bytes_body_roundtrip(client: Client) -> None:
    client.send("q", b"\x00\xffraw")
    assert receive_one(client, "q").body == b"\x00\xffraw"


def test_unserialisable_body_is_a_clear_error(client: Client) -> None:
    with pytest.raises(postroom.SerializationError, match="JSON"):
        client.send("q", object())


def test_counters_count_each_outcome(client: Client) -> None:
    client.declare_queue("q", max_attempts=2)
    client.send_many("q", [1, 2, 3])
    a, b, c = client.receive("q", max_messages=3)
    client.ack(a)
    client.retry(b, delay=0)
    client.reject(c)
    client.redrive("q")
    got = anyio.run(_counters, client.url)
    assert got == {
        "sent": 3,
        "acked": 1,
        "retried": 1,
        "dead_lettered": 1,
        "redriven": 1,
    }


async def _counters(url: str) -> dict[str, int]:
    async with postroom.connect_async(url) as ac:
        return (await ac.counters(["q"]))["q"]


def test_redrive_checks_its_ids(client: Client) -> None:
    client.declare_queue("q", max_attempts=1)
    mid = client.send("q", "x")
    client.reject(receive_one(client, "q"))
    with pytest.raises(postroom.ConfigurationError, match="id strings"):
        client.redrive("q", ids=[123])  # type: ignore[list-item]
    assert client.redrive("q", ids=mid) == [mid]
