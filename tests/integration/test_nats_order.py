"""NATS specifics of groups, priorities and rate limits (``docs/backends/nats.md``,
"Groups, priorities, rate limits: emulated"): generated sends and receives keep
the rules at every step, a group whose head's holder stopped half-way goes on
(on the next send, or on claims when no send comes),
an expired lease of a priority message comes back at its priority, and a
priority skipped as all leased is pulled again once a message is stored."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.client import Client as NatsClient

import postroom
from postroom.backends.nats._names import token
from tests.contract.conftest import _nats

GROUPS = ["a", "b", "c"]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return _nats(tmp_path, "o" + uuid.uuid4().hex[:12])


@pytest.fixture
def client(url: str) -> Iterator[postroom.Client]:
    with postroom.connect(url) as c:
        yield c


def _prefix(url: str) -> str:
    return url.rpartition("prefix=")[2]


sends = st.tuples(
    st.just("send"), st.sampled_from([None, *GROUPS]), st.sampled_from([0, 3, 9])
)
receives = st.tuples(
    st.just("receive"), st.integers(1, 4), st.sampled_from(["ack", "release"])
)


class Model:
    """What was sent and what is left, to check each receive against."""

    def __init__(self, client: postroom.Client, queue: str) -> None:
        self.client, self.queue = client, queue
        client.declare_queue(queue)
        self.sent: dict[str, tuple[str | None, int]] = {}  # id -> (group, priority)
        self.left: dict[str, tuple[str | None, int]] = {}
        self.order: list[str] = []  # ids in send order
        self.released: set[str] = set()
        self.firsts: list[str] = []  # first deliveries, in order

    def send(self, group: str | None, priority: int) -> None:
        mid = self.client.send(self.queue, "x", group=group, priority=priority)
        self.left[mid] = self.sent[mid] = (group, priority)
        self.order.append(mid)

    def deliverable(self) -> set[str]:
        """Ungrouped messages left and the oldest left of each group."""
        heads: set[str] = set()
        out = set()
        for mid in (m for m in self.order if m in self.left):
            group = self.left[mid][0]
            if group is None:
                out.add(mid)
            elif group not in heads:
                out.add(mid)
                heads.add(group)
        return out

    def receive(self, k: int, action: str) -> int:
        before = self.deliverable()
        got = self.client.receive(self.queue, max_messages=k)
        ids = [d.id for d in got]
        assert set(ids) <= before, "a message behind its group's head came out"
        groups = [self.left[i][0] for i in ids if self.left[i][0] is not None]
        assert len(groups) == len(set(groups))
        rest = before - set(ids)
        assert len(ids) == k or not rest, "a claim left deliverable messages"
        if ids and rest:
            taken = min(self.left[i][1] for i in ids)
            assert taken >= max(self.left[i][1] for i in rest)
        for d in got:
            assert (d.message.group, d.message.priority) == self.left[d.id]
            if d.id not in self.firsts:
                self.firsts.append(d.id)
        if action == "ack":
            for d in got:
                self.client.ack(d)
                del self.left[d.id]
        else:
            self.client.release(got)
            self.released.update(ids)
        return len(ids)

    def check_loose_order(self) -> None:
        """Ungrouped messages of one priority, never released: in send order."""
        for priority in (0, 3, 9):
            loose = [
                i
                for i in self.order
                if self.sent[i] == (None, priority) and i not in self.released
            ]
            assert [i for i in self.firsts if i in loose] == loose


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=st.lists(st.one_of(sends, receives), min_size=4, max_size=14))
def test_generated_sends_and_receives_keep_group_and_priority_rules(
    client: postroom.Client, ops: list[tuple[str, object, object]]
) -> None:
    """After every receive: each message was its group's oldest left (and one per
    group), none left deliverable has a higher priority than one taken, a
    receive that took fewer than asked left nothing deliverable; ungrouped
    messages of one priority never released come in send order."""
    model = Model(client, "g" + uuid.uuid4().hex[:8])
    for op, a, b in ops:
        if op == "send":
            model.send(None if a is None else str(a), int(str(b)))
        else:
            model.receive(int(str(a)), str(b))
    while model.left:
        assert model.receive(4, "ack"), "messages were left that no receive took"
    model.check_loose_order()


def _raw(url: str, work: object) -> None:
    """Run ``work(nc)`` (a coroutine function) on a connection of its own."""

    async def run() -> None:
        nc = await nats.connect("nats://127.0.0.1:4222")
        try:
            await work(nc)  # type: ignore[operator]
        finally:
            await nc.close()

    asyncio.run(run())


def _age_group_state(url: str, queue: str, group: str) -> None:
    """Make the group's head look let out a minute ago."""
    prefix = _prefix(url)
    subject = f"$KV.{prefix}_meta.grp.{token(queue)}.{token(group)}"

    async def work(nc: NatsClient) -> None:
        js = nc.jetstream()
        raw = await js.get_last_msg(f"KV_{prefix}_meta", subject)
        state = json.loads(raw.data or b"{}")
        state["t"] -= 60_000
        await js.publish(subject, json.dumps(state).encode())

    _raw(url, work)


def test_a_group_whose_head_was_acked_by_a_stopped_process_goes_on(
    client: postroom.Client, url: str
) -> None:
    """A head acked by a process that stopped before letting the next one out:
    the next send to the group finds the head stored nowhere and goes on; a head
    that is only leased keeps its group waiting."""
    first, second = client.send_many("q", ["a1", "a2"], group="a")
    [head] = client.receive("q", visibility_timeout=30)
    assert head.id == first
    _age_group_state(url, "q", "a")
    client.send("q", "a3", group="a")  # the head is leased: still out
    assert client.receive("q") == []
    reply = head.receipt.partition(":")[2]

    async def ack(nc: NatsClient) -> None:
        await nc.request(reply, b"+ACK", timeout=5)  # the ack, and nothing after

    _raw(url, ack)
    assert client.receive("q") == []  # nobody let a2 out yet
    _age_group_state(url, "q", "a")
    client.send("q", "a4", group="a")
    [nxt] = client.receive("q", wait=5)
    assert nxt.id == second
    assert client.receive("q") == []


def test_a_head_let_out_half_way_is_stored_by_the_next_send(
    client: postroom.Client, url: str
) -> None:
    """A process stopped after writing the group's new head but before storing its
    copy: the next send to the group more than 10 s later stores it (once)."""
    client.send("q", "warm-up", group="z")  # makes the queue's group stream
    client.ack(client.receive("q")[0])
    prefix, queue_token, group_token = _prefix(url), token("q"), token("a")
    mid = "m" + uuid.uuid4().hex

    async def half_way(nc: NatsClient) -> None:
        js = nc.jetstream()
        meta = {"i": mid, "h": {}, "e": 1, "a": 1, "g": "a"}
        ack = await js.publish(
            f"{prefix}.g.{queue_token}.{group_token}",
            b'"a1"',
            headers={"Postroom-Meta": json.dumps(meta)},
        )
        state = {"o": mid, "s": ack.seq, "p": 0, "t": 1, "v": 1}
        key = f"$KV.{prefix}_meta.grp.{queue_token}.{group_token}"
        await js.publish(key, json.dumps(state).encode())

    _raw(url, half_way)
    assert client.receive("q") == []
    later = client.send("q", "a2", group="a")
    [d] = client.receive("q", wait=5)
    assert (d.id, d.message.json(), d.message.group) == (mid, "a1", "a")
    assert client.receive("q") == []
    client.ack(d)
    [d2] = client.receive("q", wait=5)
    assert d2.id == later
    client.ack(d2)
    assert client.stats("q").ready == 0


def test_a_group_whose_head_was_acked_by_a_stopped_process_goes_on_without_a_send(
    url: str,
) -> None:
    """No send comes after a head's holder stopped between its ack and letting the
    next one out: claims (of another process) find the group stale and go on."""
    with postroom.connect(url) as sender:
        first, second = sender.send_many("q", ["a1", "a2"], group="a")
        [head] = sender.receive("q", visibility_timeout=30)
    assert head.id == first
    reply = head.receipt.partition(":")[2]

    async def ack(nc: NatsClient) -> None:
        await nc.request(reply, b"+ACK", timeout=5)  # the ack, and nothing after

    _raw(url, ack)  # the holder stops here
    with postroom.connect(url) as other:
        assert other.receive("q") == []  # the head went out a moment ago
        _age_group_state(url, "q", "a")
        [nxt] = other.receive("q", wait=12)
        assert nxt.id == second
        other.ack(nxt)
        assert other.receive("q") == []
        assert other.stats("q").ready == 0


def test_a_message_a_stopped_sender_left_on_the_group_stream_goes_out_without_a_send(
    client: postroom.Client, url: str
) -> None:
    """A sender stopped after storing a grouped message on G, before letting it
    out (no head was out): a claim lets it out, with no further send."""
    client.send("q", "warm-up", group="z")  # makes the queue's group stream
    client.ack(client.receive("q")[0])
    prefix, queue_token = _prefix(url), token("q")
    mid = "m" + uuid.uuid4().hex

    async def stored_only(nc: NatsClient) -> None:
        meta = {"i": mid, "h": {}, "e": 1, "a": 1, "g": "b"}
        await nc.jetstream().publish(
            f"{prefix}.g.{queue_token}.{token('b')}",
            b'"b1"',
            headers={"Postroom-Meta": json.dumps(meta)},
        )

    _raw(url, stored_only)
    [d] = client.receive("q", wait=12)
    assert (d.id, d.message.json(), d.message.group) == (mid, "b1", "b")
    assert client.receive("q") == []
    client.ack(d)
    assert client.stats("q").ready == 0


def test_an_expired_lease_of_a_priority_message_comes_back_at_its_priority(
    client: postroom.Client,
) -> None:
    client.declare_queue("q", visibility_timeout=5)
    low = client.send("q", "low")
    high = client.send("q", "high", priority=7)
    [d] = client.receive("q", visibility_timeout=0.3)
    assert d.id == high
    stats = client.stats("q")
    assert (stats.ready, stats.in_flight) == (1, 1)
    time.sleep(0.5)
    deadline = time.monotonic() + 5
    while client.stats("q").ready != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.stats("q").ready == 2
    [again] = client.receive("q")
    assert (again.id, again.attempts, again.message.priority) == (high, 2, 7)
    client.ack(again)
    [rest] = client.receive("q")
    assert rest.id == low


def test_a_priority_found_all_leased_is_pulled_again_once_one_is_stored(
    client: postroom.Client,
) -> None:
    """A claim skips a priority whose messages it found all leased only while
    nothing new is stored: a message sent after that comes first again."""
    high = client.send("q", "h1", priority=9)
    low = client.send_many("q", ["l1", "l2"])
    assert [d.id for d in client.receive("q")] == [high]
    assert [d.id for d in client.receive("q")] == [low[0]]  # priority 9 all leased
    later = client.send("q", "h2", priority=9)
    assert [d.id for d in client.receive("q")] == [later]
    assert [d.id for d in client.receive("q")] == [low[1]]
