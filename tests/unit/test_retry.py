from __future__ import annotations

import random
from datetime import timedelta

import pytest

from postroom import Backoff
from postroom.model.retry import seconds, to_ms


def test_backoff_grows_exponentially_and_caps() -> None:
    b = Backoff(initial=1.0, factor=2.0, max=5.0, jitter=False)
    assert [b.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_backoff_jitter_stays_within_half_and_full() -> None:
    b = Backoff(initial=2.0, factor=3.0, max=100.0, jitter=True)
    rng = random.Random(7)
    for n in range(1, 6):
        base = min(2.0 * 3.0 ** (n - 1), 100.0)
        d = b.delay(n, rng)
        assert base / 2 <= d <= base


def test_backoff_huge_attempt_does_not_overflow() -> None:
    assert Backoff(initial=1, factor=10, max=300, jitter=False).delay(10_000) == 300


def test_backoff_roundtrips_dict() -> None:
    b = Backoff(initial=0.5, factor=1.5, max=9, jitter=False)
    assert Backoff.from_dict(b.to_dict()) == b


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="factor"):
        Backoff(factor=0.5)
    with pytest.raises(ValueError, match="initial"):
        Backoff(initial=-1)


def test_durations_accept_seconds_and_timedelta() -> None:
    assert seconds(timedelta(minutes=1)) == 60.0
    assert to_ms(1.5) == 1500
    assert to_ms(None) is None
    with pytest.raises(ValueError, match="negative"):
        to_ms(-1)
