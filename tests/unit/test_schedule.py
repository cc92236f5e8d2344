"""The pure schedules of periodic jobs: intervals and 5-field cron."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from postroom import InvalidArgument
from postroom.model.schedule import Every, make_schedule, parse_cron
from postroom.runtime.periodic import periodic_queue


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_every_is_aligned_to_the_epoch_and_strictly_after() -> None:
    every = Every(300.0)
    assert every.next_after(utc(2026, 1, 1, 10, 2, 7)) == utc(2026, 1, 1, 10, 5)
    assert every.next_after(utc(2026, 1, 1, 10, 5)) == utc(2026, 1, 1, 10, 10)
    half = Every(0.5 * 3600)
    assert half.next_after(utc(2026, 1, 1, 23, 59, 59)) == utc(2026, 1, 2)


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("*/5 * * * *", utc(2026, 3, 4, 10, 2), utc(2026, 3, 4, 10, 5)),
        ("*/5 * * * *", utc(2026, 3, 4, 10, 5), utc(2026, 3, 4, 10, 10)),
        ("0 9 * * 1-5", utc(2026, 3, 6, 9, 0), utc(2026, 3, 9, 9, 0)),  # Fri -> Mon
        ("30 2 1 * *", utc(2026, 3, 4), utc(2026, 4, 1, 2, 30)),
        ("0 0 29 2 *", utc(2026, 3, 1), utc(2028, 2, 29)),
        ("15,45 8-9 * * *", utc(2026, 1, 1, 8, 50), utc(2026, 1, 1, 9, 15)),
        ("0 12 * * 0", utc(2026, 3, 4), utc(2026, 3, 8, 12)),  # Sunday as 0
        ("0 12 * * 7", utc(2026, 3, 4), utc(2026, 3, 8, 12)),  # and as 7
        ("0 0 13 * 5", utc(2026, 3, 4), utc(2026, 3, 6)),  # day OR weekday
        ("59 23 31 12 *", utc(2026, 12, 31, 23, 59, 30), utc(2027, 12, 31, 23, 59)),
    ],
)
def test_cron_next_tick(expression: str, after: datetime, expected: datetime) -> None:
    assert parse_cron(expression).next_after(after) == expected


def test_cron_in_a_time_zone_follows_its_wall_clock() -> None:
    paris = parse_cron("0 9 * * *", "Europe/Paris")
    assert paris.next_after(utc(2026, 1, 10)) == utc(2026, 1, 10, 8)  # UTC+1
    assert paris.next_after(utc(2026, 7, 10)) == utc(2026, 7, 10, 7)  # UTC+2
    # 02:30 does not exist on 29 March 2026 in Paris: it maps to 03:30 CEST.
    skipped = parse_cron("30 2 * * *", "Europe/Paris").next_after(utc(2026, 3, 28, 12))
    assert skipped - utc(2026, 3, 29, 0, 30) <= timedelta(hours=1)


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("* * * *", "4 fields"),
        ("60 * * * *", "minute '60'"),
        ("* 24 * * *", "hour '24'"),
        ("* * 0 * *", "day of month '0'"),
        ("* * * 13 *", "month '13'"),
        ("* * * * 8", "day of week '8'"),
        ("5-1 * * * *", "backwards"),
        ("*/0 * * * *", "step"),
        ("a * * * *", "minute 'a'"),
    ],
)
def test_cron_rejects_bad_expressions(expression: str, problem: str) -> None:
    with pytest.raises(InvalidArgument, match=problem):
        parse_cron(expression)


def test_cron_that_never_matches_says_so() -> None:
    with pytest.raises(InvalidArgument, match="never matches"):
        parse_cron("0 0 31 2 *").next_after(utc(2026, 1, 1))


def test_make_schedule_checks_its_arguments() -> None:
    assert make_schedule(timedelta(minutes=1), None, None) == Every(60.0)
    with pytest.raises(InvalidArgument, match="exactly one"):
        make_schedule(5, "* * * * *", None)
    with pytest.raises(InvalidArgument, match="tz applies to cron"):
        make_schedule(5, None, "UTC")
    with pytest.raises(InvalidArgument, match="not a known time zone"):
        make_schedule(None, "* * * * *", "Mars/Olympus")
    with pytest.raises(InvalidArgument, match="every"):
        make_schedule(True, None, None)


def test_periodic_queue_names() -> None:
    assert periodic_queue("nightly.report") == "postroom.periodic.nightly.report"
    with pytest.raises(InvalidArgument, match="name"):
        periodic_queue("")
    with pytest.raises(InvalidArgument, match="name"):
        periodic_queue("x" * 200)
