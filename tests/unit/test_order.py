"""The token bucket of rate limits (postroom.model.order), without I/O."""

from __future__ import annotations

from postroom.model.order import Bucket, burst, take_permits


def test_burst_is_a_tenth_of_a_second_and_at_least_one() -> None:
    assert burst(5) == 1.0
    assert burst(50) == 5.0
    assert burst(1_000_000) == 100_000.0


def test_a_new_bucket_is_full_and_refills_at_the_rate() -> None:
    first = take_permits(50, None, 1_000, 100)
    assert first.granted == 5  # the burst
    bucket, wait_ms = first.after(5)
    assert (bucket, wait_ms) == (Bucket(0.0, 1_000), 20)  # one permit per 20 ms
    assert take_permits(50, bucket, 1_010, 100).granted == 0
    assert take_permits(50, bucket, 1_020, 100).granted == 1
    assert take_permits(50, bucket, 2_000, 100).granted == 5  # capped at the burst


def test_permits_not_taken_stay_in_the_bucket() -> None:
    allowed = take_permits(100, None, 0, 3)
    assert allowed.granted == 3
    bucket, wait_ms = allowed.after(1)  # only one message was there
    assert (bucket.tokens, wait_ms) == (9.0, 0)


def test_a_clock_behind_the_bucket_refills_nothing() -> None:
    bucket = Bucket(0.5, 10_000)
    allowed = take_permits(1, bucket, 9_000, 1)  # another process's clock is ahead
    assert allowed.granted == 0
    assert allowed.after(0) == (Bucket(0.5, 10_000), 500)


def test_over_any_window_deliveries_stay_within_rate_times_time_plus_burst() -> None:
    rate, bucket, taken = 20.0, None, []
    for now in range(0, 10_000, 7):  # a greedy consumer every 7 ms
        allowed = take_permits(rate, bucket, now, 100)
        bucket, _ = allowed.after(allowed.granted)
        taken += [now] * allowed.granted
    assert len(taken) <= rate * 10 + burst(rate)
    for start in range(0, 9_000, 250):
        in_window = [t for t in taken if start <= t < start + 1_000]
        assert len(in_window) <= rate + burst(rate)
