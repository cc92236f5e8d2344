"""Generated ``at`` arguments of ``take_sample`` and generated samples: a time
is accepted exactly when it is aware, within the window and not in the future
(else :class:`InvalidArgument` naming ``at``); samples survive their record
form; rates are never negative, whatever the counters do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import postroom
from postroom.model.samples import (
    RATES,
    STEP_MS,
    WINDOW_MS,
    QueueSample,
    Sample,
    sample_time,
    series,
)

NOW_MS = 1_780_000_000_000
NOW = datetime.fromtimestamp(NOW_MS / 1000, UTC)

times = st.one_of(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))]),
    ),
    st.timedeltas(min_value=timedelta(hours=-2), max_value=timedelta(minutes=5)).map(
        lambda d: NOW + d
    ),
    st.datetimes(),  # naive
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.none(),
)  # fmt: skip


@given(value=times)
def test_sample_time_accepts_the_window_only(value: Any) -> None:
    aware = isinstance(value, datetime) and value.utcoffset() is not None
    if aware and NOW_MS - WINDOW_MS < int(value.timestamp() * 1000) <= NOW_MS:
        assert sample_time(value, NOW_MS) == int(value.timestamp() * 1000)
    else:
        with pytest.raises(postroom.InvalidArgument, match=r"^at must be"):
            sample_time(value, NOW_MS)


def test_take_sample_refuses_a_time_out_of_the_window() -> None:
    async def take(at: Any) -> bool:
        async with postroom.connect_async("memory://sample-times") as ac:
            return bool(await ac.take_sample(at))

    with pytest.raises(postroom.InvalidArgument, match="within the last 3600 s"):
        anyio.run(take, datetime.now(UTC) - timedelta(hours=2))
    with pytest.raises(postroom.InvalidArgument, match="timezone-aware"):
        anyio.run(take, datetime.now())
    assert anyio.run(take, None)  # now: the first sample of this bucket


counts = st.integers(min_value=0, max_value=10**12)
queue_samples = st.builds(
    QueueSample, counts, counts, counts, counts, counts,
    st.one_of(st.none(), st.floats(min_value=0, max_value=1e9)),
)  # fmt: skip
samples = st.lists(
    st.builds(
        Sample,
        st.integers(min_value=0, max_value=10**13),
        st.dictionaries(st.sampled_from(["a", "b", "c.d"]), queue_samples),
    ),
    max_size=8,
).map(lambda found: sorted(found, key=lambda s: s.at_ms))


@given(found=samples)
def test_samples_round_trip_and_rates_are_never_negative(found: list[Sample]) -> None:
    assert [Sample.loads(s.dumps()) for s in found] == found
    for point in series(found, ["a", "b", "c.d"]):
        for name in RATES:
            rate = point.rates[name]
            assert rate is None or rate >= 0
        assert point.ready >= 0


@given(gap=st.integers(min_value=1, max_value=10 * STEP_MS))
def test_a_gap_of_more_than_three_steps_has_no_rate(gap: int) -> None:
    q = QueueSample(1, 0, 0, 0, 1, None)
    points = series([Sample(0, {"a": q}), Sample(gap, {"a": q})], ["a"])
    assert (points[1].rates["sent"] is None) == (gap > 3 * STEP_MS)
