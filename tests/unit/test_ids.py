from __future__ import annotations

from postroom.model.ids import new_id


def test_ids_are_unique_and_sorted_in_creation_order() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(len(i) == 26 for i in ids)
