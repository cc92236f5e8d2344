"""The property suite runs on every backend of tests/contract/conftest.py BACKENDS.

Each test gets a fresh backend (the contract suite's ``url`` fixture) and one sync
client for all its examples, a sentinel queue declared before them, and checks
after every example that the sentinel is unchanged, that nothing the example
received is left in flight, and that the backend still works.

Examples per test: 25 by default, derandomized so that CI runs the same ones;
``POSTROOM_PROPERTY_EXAMPLES=500`` (and ``POSTROOM_PROPERTY_SEED=random``) digs
deeper locally.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings

import postroom
from tests.contract.conftest import _redis_cleanup, client, url

__all__ = ["Harness", "_redis_cleanup", "client", "harness", "url"]

settings.register_profile(
    "postroom",
    max_examples=int(os.environ.get("POSTROOM_PROPERTY_EXAMPLES", "25")),
    deadline=None,
    database=None,
    derandomize=os.environ.get("POSTROOM_PROPERTY_SEED") != "random",
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
settings.load_profile("postroom")

SENTINEL = "sentinel.queue"
HEALTH = "health.queue"
# A lease ends at most this long after it was taken (12 hours and some slack).
MAX_LEASE = timedelta(hours=12, minutes=1)


@dataclass
class Harness:
    """One backend under test: its client, the sentinel's state, what examples
    received (to be settled), and a counter for unique queue names."""

    client: postroom.Client
    sentinel_id: str
    held: list[postroom.Delivery] = field(default_factory=list)
    queues: set[str] = field(default_factory=set)
    n: int = 0

    def fresh(self, name: str) -> str:
        """``name`` made unique to this example (its validity unchanged)."""
        self.n += 1
        return f"p{self.n}-{name}"

    def hold(self, deliveries: list[postroom.Delivery]) -> None:
        """Deliveries an example got: each lease must be able to end."""
        now = datetime.now(UTC)
        for d in deliveries:
            assert d.lease_expires_at <= now + MAX_LEASE, d.lease_expires_at
            self.queues.add(d.queue)
        self.held.extend(deliveries)

    def settle(self) -> None:
        """Ack what an example still holds, then check the invariants."""
        c = self.client
        lost = c.ack_many(self.held) if self.held else []
        assert all(isinstance(d, postroom.Delivery) for d in lost)
        self.held.clear()
        for q in self.queues:
            stuck = c.stats(q).in_flight
            if stuck:
                # Leases that ended before their ack (a lease of a millisecond):
                # those messages must be there to take again.
                again = c.receive(q, max_messages=stuck)
                assert len(again) == stuck, (q, stuck, again)
                c.ack_many(again)
                assert c.stats(q).in_flight == 0, q
        self.queues.clear()
        st = c.stats(SENTINEL)
        assert (st.ready, st.delayed, st.in_flight, st.dead) == (1, 0, 0, 0)
        [m] = c.peek(SENTINEL)
        assert (m.id, m.json(), m.attempts) == (self.sentinel_id, {"s": 1}, 0)
        mid = c.send(HEALTH, {"ok": True})
        [d] = c.receive(HEALTH)
        assert d.id == mid and d.message.json() == {"ok": True}
        c.ack(d)


@pytest.fixture
def harness(client: postroom.Client) -> Iterator[Harness]:
    """A backend with its sentinel queue, settled after the test too."""
    client.declare_queue(SENTINEL, max_attempts=3)
    h = Harness(client, client.send(SENTINEL, {"s": 1}))
    yield h
    h.settle()
    assert all(s.in_flight == 0 for s in client.stats().values())
