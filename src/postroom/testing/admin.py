"""Queue administration on every backend: a policy's ``attributes`` are stored and
read back; ``delete_queue`` removes the queue, its messages (leased ones too), dead
letters, dedup keys and policy, leaves other queues alone, and frees the name."""

from __future__ import annotations

import pytest

import postroom
from postroom import Client


def test_delete_queue_removes_everything_of_that_queue(client: Client) -> None:
    client.declare_queue("doomed", max_attempts=1, visibility_timeout=60)
    client.send_many("doomed", [1, 2, 3])
    client.send("doomed", "later", delay=60)
    client.send("doomed", "dup", dedup_key="k")
    [leased, dead] = client.receive("doomed", max_messages=2)
    client.reject(dead, error="poison")
    client.send("kept", "stays")
    client.delete_queue("doomed")
    assert "doomed" not in client.queues()
    assert client.queues() == ["kept"]
    with pytest.raises(postroom.QueueNotFound):
        client.stats("doomed")
    with pytest.raises(postroom.QueueNotFound):
        client.dead_letters("doomed")
    assert client.stats("kept").ready == 1
    # The name starts afresh: default policy, no messages, no dead letters, and
    # the old dedup key is forgotten.
    new_id = client.send("doomed", "dup", dedup_key="k")
    assert client.queue_policy("doomed").max_attempts == 5
    st = client.stats("doomed")
    assert (st.ready, st.delayed, st.in_flight, st.dead) == (1, 0, 0, 0)
    [d] = client.receive("doomed")
    assert d.id == new_id and d.attempts == 1
    with pytest.raises(postroom.LeaseLost):
        client.ack(leased)


def test_delete_unknown_queue_raises_queue_not_found(client: Client) -> None:
    with pytest.raises(postroom.QueueNotFound):
        client.delete_queue("never-declared")


def test_policy_attributes_are_stored_and_replaced(client: Client) -> None:
    attrs = {"DelaySeconds": "5", "RedrivePolicy": '{"maxReceiveCount": 3}'}
    client.declare_queue("q", max_attempts=3, attributes=attrs)
    assert client.queue_policy("q").attributes == attrs
    with postroom.connect(client.url) as other:
        assert other.queue_policy("q").attributes == attrs
    client.declare_queue("q")
    assert client.queue_policy("q").attributes == {}
