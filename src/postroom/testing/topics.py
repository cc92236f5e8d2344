"""Topics and subscriptions on every backend: fan-out, filters, per-subscription
policy, dead letters and redrive (SPEC §1, §4, §8; issue 4)."""

from __future__ import annotations

import pytest

import postroom
from postroom import Backoff, Client
from postroom.client.core import subscription_queue_name

NO_WAIT = Backoff(initial=0.0, factor=1.0, max=0.0, jitter=False)


def one(client: Client, queue: str) -> postroom.Delivery:
    got = client.receive(queue, wait=2.0)
    assert len(got) == 1, f"expected one message on {queue}, got {got}"
    return got[0]


def ready(client: Client, queue: str) -> int:
    return client.stats(queue).ready


def test_publish_fans_out_one_copy_per_subscription(client: Client) -> None:
    subs = [client.create_subscription("orders", n) for n in ("a", "b", "c")]
    eid = client.publish("orders", {"order": 1}, headers={"trace": "t1"})
    copies = [one(client, s.queue) for s in subs]
    assert {d.id for d in copies} == {eid}
    for d, s in zip(copies, subs, strict=True):
        assert d.queue == s.queue == subscription_queue_name("orders", s.name)
        assert d.message.json() == {"order": 1}
        assert d.headers["trace"] == "t1"
        assert d.headers["postroom-topic"] == "orders"
        assert d.attempts == 1
    client.ack(copies[0])
    client.retry(copies[1], delay=0.0)
    assert client.stats(subs[0].queue).ready == 0
    assert one(client, subs[1].queue).attempts == 2  # its own attempts
    assert client.stats(subs[2].queue).in_flight == 1  # untouched by the others


def test_publish_ids_are_time_ordered(client: Client) -> None:
    client.create_subscription("t", "s")
    ids = [client.publish("t", i) for i in range(10)]
    assert ids == sorted(ids) and len(set(ids)) == 10
    assert [m.id for m in client.peek(subscription_queue_name("t", "s"), 20)] == ids


def test_events_before_a_subscription_exists_are_not_copied(client: Client) -> None:
    client.publish("t", "early")
    sub = client.create_subscription("t", "late")
    client.publish("t", "later")
    assert one(client, sub.queue).message.json() == "later"
    assert client.receive(sub.queue) == []


def test_publish_without_subscriptions_is_counted(client: Client) -> None:
    client.publish("nobody.listens", {"x": 1})
    client.publish("nobody.listens", {"x": 2})
    client.create_subscription("heard", "s")
    client.publish("heard", "x")
    topics = {t.topic: t for t in client.topics()}
    assert topics["nobody.listens"] == postroom.TopicInfo("nobody.listens", 0, 2, 2)
    assert topics["heard"] == postroom.TopicInfo("heard", 1, 1, 0)


def test_filters_match_header_values_exactly(client: Client) -> None:
    everything = client.create_subscription("ev", "all")
    eu = client.create_subscription("ev", "eu", filter={"region": "eu"})
    gold = client.create_subscription(
        "ev", "eu-gold", filter={"region": "eu", "tier": "gold"}
    )
    client.publish("ev", 1, headers={"region": "eu"})
    client.publish("ev", 2, headers={"region": "us", "tier": "gold"})
    client.publish("ev", 3, headers={"region": "eu", "tier": "gold"})
    client.publish("ev", 4, headers={"region": "EU"})
    client.publish("ev", 5)

    def bodies(queue: str) -> list[int]:
        return [m.json() for m in client.peek(queue, 20)]

    assert bodies(everything.queue) == [1, 2, 3, 4, 5]
    assert bodies(eu.queue) == [1, 3]
    assert bodies(gold.queue) == [3]
    assert gold.filter == {"region": "eu", "tier": "gold"}


def test_event_matching_no_filter_is_counted_unrouted(client: Client) -> None:
    client.create_subscription("ev", "eu", filter={"region": "eu"})
    client.publish("ev", 1, headers={"region": "us"})
    [info] = [t for t in client.topics() if t.topic == "ev"]
    assert (info.subscriptions, info.published, info.unrouted) == (1, 1, 1)


def test_subscription_has_its_own_policy_dead_letters_and_redrive(
    client: Client,
) -> None:
    strict = client.create_subscription("pay", "strict", max_attempts=1)
    patient = client.create_subscription("pay", "patient", max_attempts=3)
    assert client.queue_policy(strict.queue).max_attempts == 1
    assert client.queue_policy(patient.queue).max_attempts == 3
    client.declare_queue(patient.queue, max_attempts=3, backoff=NO_WAIT)
    eid = client.publish("pay", {"amount": 5})

    client.retry(one(client, strict.queue), error=RuntimeError("card declined"))
    client.retry(one(client, patient.queue), error=RuntimeError("card declined"))
    [dl] = client.dead_letters(strict.queue)
    assert (dl.id, dl.queue, dl.reason, dl.attempts) == (eid, strict.queue, "failed", 1)
    assert dl.error is not None and dl.error.message == "card declined"
    assert client.dead_letters(patient.queue) == []
    assert one(client, patient.queue).attempts == 2

    assert client.redrive(strict.queue) == [eid]
    again = one(client, strict.queue)
    assert (again.id, again.attempts, again.message.redrives) == (eid, 1, 1)
    assert again.message.json() == {"amount": 5}
    assert again.headers["postroom-topic"] == "pay"
    client.ack(again)
    assert client.stats(strict.queue).dead == 0


def test_reject_on_a_subscription_dead_letters_only_that_copy(client: Client) -> None:
    a = client.create_subscription("t", "a")
    b = client.create_subscription("t", "b")
    client.publish("t", "poison")
    client.reject(one(client, a.queue), error="cannot parse")
    assert [d.reason for d in client.dead_letters(a.queue)] == ["rejected"]
    assert client.dead_letters(b.queue) == []
    assert ready(client, b.queue) == 1


def test_subscriptions_list_get_and_delete(client: Client) -> None:
    client.create_subscription("b.topic", "z")
    client.create_subscription("a.topic", "y")
    client.create_subscription("a.topic", "x")
    listed = [(s.topic, s.name) for s in client.subscriptions()]
    assert listed == [("a.topic", "x"), ("a.topic", "y"), ("b.topic", "z")]
    assert [s.name for s in client.subscriptions("a.topic")] == ["x", "y"]
    assert client.subscription("a.topic", "y").queue == "a.topic:y"
    assert "a.topic:y" in client.queues()

    client.publish("a.topic", "bye")
    client.delete_subscription("a.topic", "y")
    assert [s.name for s in client.subscriptions("a.topic")] == ["x"]
    assert "a.topic:y" not in client.queues()
    with pytest.raises(postroom.QueueNotFound):
        client.receive("a.topic:y")
    with pytest.raises(postroom.SubscriptionNotFound):
        client.subscription("a.topic", "y")
    with pytest.raises(postroom.SubscriptionNotFound):
        client.delete_subscription("a.topic", "y")
    client.publish("a.topic", "still fine")
    assert ready(client, "a.topic:x") == 2


def test_create_subscription_is_idempotent_and_keeps_the_secret(
    client: Client,
) -> None:
    first = client.create_subscription(
        "t", "hook", push_endpoint="https://example.com/hooks"
    )
    assert first.push_endpoint == "https://example.com/hooks"
    assert first.secret and len(first.secret) >= 32
    again = client.create_subscription(
        "t", "hook", push_endpoint="https://example.com/hooks"
    )
    assert again.secret == first.secret
    assert client.subscription("t", "hook").secret == first.secret
    given = client.create_subscription(
        "t", "given", push_endpoint="http://127.0.0.1:9/x", secret="s3cret"
    )
    assert given.secret == "s3cret"
    pull = client.create_subscription("t", "pull")
    assert pull.secret and len(pull.secret) >= 32


@pytest.mark.parametrize(
    "endpoint", ["ftp://example.com/x", "example.com/hook", "http://", "file:///etc"]
)
def test_push_endpoint_must_be_http(client: Client, endpoint: str) -> None:
    with pytest.raises(postroom.InvalidArgument, match="push_endpoint"):
        client.create_subscription("t", "bad", push_endpoint=endpoint)
    assert client.subscriptions("t") == []


def test_create_subscription_again_keeps_a_tuned_policy(client: Client) -> None:
    sub = client.create_subscription("orders", "audit", max_attempts=3)
    client.declare_queue(sub.queue, max_attempts=9, visibility_timeout=7.0)
    again = client.create_subscription("orders", "audit", max_attempts=3)
    assert again.queue == sub.queue
    policy = client.queue_policy(sub.queue)
    assert (policy.max_attempts, policy.visibility_timeout) == (9, 7.0)
