from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from postroom.model.ids import _ALPHABET, _encode, new_id


def test_ids_are_unique_and_sorted_in_creation_order() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 26 for i in ids)


def _decode(mid: str) -> int:
    value = 0
    for c in mid:
        value = value * 32 + _ALPHABET.index(c)
    return value


@given(st.integers(0, 2**48 - 1), st.integers(0, 2**80 - 1))
def test_an_id_is_the_base32_of_its_time_and_random_bits(ms: int, rand: int) -> None:
    mid = _encode(ms, rand)
    assert len(mid) == 26
    assert _decode(mid) == ms << 80 | rand


def test_an_id_starts_with_its_creation_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    mid = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= _decode(mid) >> 80 <= after
