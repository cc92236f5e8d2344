"""Settling several deliveries in one call on every backend: ``ack_and_receive``
and ``settle`` (acks, retries, dead letters and the next receive together)."""

from __future__ import annotations

import time

import pytest

import postroom
from postroom import Client

from .queues import SHORT, receive_one


def test_ack_and_receive_acks_then_leases_the_next(client: Client) -> None:
    ids = client.send_many("q", ["a", "b", "c"])
    first = receive_one(client, "q")
    lost, got = client.ack_and_receive([first], "q", 5)
    assert lost == [] and sorted(d.id for d in got) == sorted(set(ids) - {first.id})
    lost, got = client.ack_and_receive(got, "q", 5)
    assert (lost, got) == ([], [])
    st = client.stats("q")
    assert (st.ready, st.in_flight) == (0, 0)


def test_ack_and_receive_reports_lost_leases_and_acks_on_unknown_queue(
    client: Client,
) -> None:
    client.send("q", "x")
    first = client.receive("q", visibility_timeout=SHORT)[0]
    time.sleep(SHORT + 0.2)
    second = receive_one(client, "q")
    lost, got = client.ack_and_receive([first], "q")
    assert [d.id for d in lost] == [first.id] and got == []
    with pytest.raises(postroom.QueueNotFound):
        client.ack_and_receive([second], "never-declared")
    assert client.stats("q").in_flight == 0


def test_settle_acks_retries_dead_letters_and_receives_in_one_call(
    client: Client,
) -> None:
    client.declare_queue("q", max_attempts=1)
    client.declare_queue("r", max_attempts=3)
    client.send_many("q", ["ok", "used up", "rejected", "next"])
    ok, used_up, rejected = client.receive("q", max_messages=3)
    client.send("r", "again")
    again = receive_one(client, "r")
    done = client.settle(
        [ok],
        [
            postroom.Failure(used_up, "boom"),
            postroom.Failure(rejected, ValueError("bad"), "rejected"),
            postroom.Failure(again, "later", "timeout", delay=60),
        ],
        receive="q",
        max_messages=5,
    )
    assert done.lost == []
    assert {d.id for d in done.dead_lettered} == {used_up.id, rejected.id}
    assert [d.message.json() for d in done.received] == ["next"]
    dead = {d.id: d for d in client.dead_letters("q")}
    assert dead[used_up.id].reason == "failed"
    assert dead[rejected.id].reason == "rejected"
    error = dead[rejected.id].history[-1].error
    assert error is not None and error.type == "ValueError"
    st = client.stats("r")
    assert (st.delayed, st.in_flight) == (1, 0)
    counts = client.counters(["q", "r"])
    assert (counts["q"]["acked"], counts["r"]["retried"]) == (1, 1)


def test_settle_reports_lost_leases_and_records_on_unknown_queue(
    client: Client,
) -> None:
    client.send_many("q", ["x", "y"])
    first = client.receive("q", visibility_timeout=SHORT)[0]
    time.sleep(SHORT + 0.2)
    second, third = client.receive("q", max_messages=2)
    done = client.settle([first], [postroom.Failure(first, "late")])
    assert [d.id for d in done.lost] == [first.id, first.id]
    assert done.dead_lettered == [] and done.received == []
    with pytest.raises(postroom.QueueNotFound):
        client.settle([second], [postroom.Failure(third, "no")], "never-declared")
    st = client.stats("q")
    assert (st.in_flight, st.delayed + st.ready) == (0, 1)
