"""When periodic jobs run: fixed intervals and 5-field cron expressions (pure).

A schedule maps any instant to the next tick strictly after it. Ticks are the same
for every process that computes them (intervals are aligned to the Unix epoch, cron
ticks to the wall clock of the schedule's time zone), which is what lets every
worker enqueue the same tick under the same dedup key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import validate as v
from .errors import InvalidArgument

__all__ = ["Cron", "Every", "Schedule", "make_schedule", "parse_cron"]

# A cron expression matches at least once in any 4 years (29 February included).
_SEARCH_DAYS = 366 * 4 + 1

# (name, lowest, highest) of the five fields, in order.
_FIELDS: tuple[tuple[str, int, int], ...] = (
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)


class Schedule(Protocol):
    """Anything that names the next tick after an instant."""

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment`` (aware), in UTC."""
        ...


@dataclass(frozen=True, slots=True)
class Every:
    """A tick every ``seconds``, at whole multiples of it since the Unix epoch."""

    seconds: float

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment``, in UTC."""
        step = max(1, round(self.seconds * 1000))
        now = math.floor(moment.timestamp() * 1000)
        return datetime.fromtimestamp((now // step + 1) * step / 1000, UTC)


@dataclass(frozen=True, slots=True)
class Cron:
    """A parsed 5-field cron expression evaluated in the time zone ``tz``.

    As in Vixie cron, when both day of month and day of week are restricted a
    day matches if either does. A wall-clock time that a DST change skips fires
    at the instant it maps to; one it repeats fires once (the first).
    """

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Monday, as datetime.weekday()
    any_day: bool  # day of month is '*'
    any_weekday: bool  # day of week is '*'
    tz: ZoneInfo

    def _day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        by_day = day.day in self.days
        by_weekday = day.weekday() in self.weekdays
        if self.any_day or self.any_weekday:
            return by_day and by_weekday
        return by_day or by_weekday

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment``, in UTC."""
        local = moment.astimezone(self.tz).replace(second=0, microsecond=0)
        start = local.replace(tzinfo=None) + timedelta(minutes=1)
        day = start.replace(hour=0, minute=0)
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for hour in sorted(self.hours):
                    for minute in sorted(self.minutes):
                        candidate = day.replace(hour=hour, minute=minute)
                        if candidate >= start:
                            tick = candidate.replace(tzinfo=self.tz).astimezone(UTC)
                            if tick > moment:
                                return tick
            day += timedelta(days=1)
        raise InvalidArgument(  # e.g. '0 0 31 2 *'
            f"cron {self.expression!r} never matches a date: check its day and month"
        )


def _bad(expression: str, why: str) -> InvalidArgument:
    return InvalidArgument(
        f"cron {expression!r}: {why}; use 5 fields 'minute hour day-of-month month "
        "day-of-week' with *, N, A-B, */S, A-B/S and commas, e.g. '*/5 * * * *'"
    )


def _number(text: str, expression: str, field: tuple[str, int, int]) -> int:
    name, low, high = field
    if not text.isdigit() or not low <= int(text) <= high:
        raise _bad(expression, f"{name} {text!r} is not a number from {low} to {high}")
    return int(text)


def _part(part: str, expression: str, field: tuple[str, int, int]) -> set[int]:
    _, low, high = field
    span, _, step_text = part.partition("/")
    step = 1
    if step_text:
        step = _number(step_text, expression, (f"{field[0]} step", 1, high + 1))
    if span == "*":
        first, last = low, high
    elif "-" in span:
        a, _, b = span.partition("-")
        first, last = _number(a, expression, field), _number(b, expression, field)
        if first > last:
            raise _bad(expression, f"{field[0]} range {span!r} runs backwards")
    else:
        first = _number(span, expression, field)
        last = high if step_text else first
    return set(range(first, last + 1, step))


def _field(text: str, expression: str, field: tuple[str, int, int]) -> set[int]:
    values: set[int] = set()
    for part in text.split(","):
        values |= _part(part, expression, field)
    return values


def parse_cron(expression: Any, tz: Any = None) -> Cron:
    """Parse a 5-field cron expression; ``tz`` is an IANA zone name (UTC if None)."""
    if not isinstance(expression, str):
        raise InvalidArgument(
            "cron must be a string like '*/5 * * * *', got a "
            f"{type(expression).__name__}"
        )
    fields = expression.split()
    if len(fields) != 5:
        raise _bad(expression, f"it has {len(fields)} fields, not 5")
    pairs = zip(fields, _FIELDS, strict=True)
    minute, hour, day, month, weekday = (_field(t, expression, f) for t, f in pairs)
    return Cron(
        expression=expression,
        minutes=frozenset(minute),
        hours=frozenset(hour),
        days=frozenset(day),
        months=frozenset(month),
        weekdays=frozenset((d - 1) % 7 for d in weekday),  # cron: 0 and 7 = Sunday
        any_day=fields[2] == "*",
        any_weekday=fields[4] == "*",
        tz=zone(tz),
    )


def zone(tz: Any) -> ZoneInfo:
    """The ``ZoneInfo`` named ``tz`` (UTC if None)."""
    if tz is None:
        return ZoneInfo("UTC")
    if not isinstance(tz, str):
        raise InvalidArgument(f"tz must be an IANA zone name string, got {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidArgument(
            f"tz {tz!r} is not a known time zone: use an IANA name such as "
            "'Europe/Paris' or 'UTC'"
        ) from exc


def make_schedule(every: Any, cron: Any, tz: Any) -> Schedule:
    """The schedule of ``@app.periodic``: exactly one of ``every`` and ``cron``."""
    if (every is None) == (cron is None):
        raise InvalidArgument(
            "periodic needs exactly one of every= (seconds or a timedelta) and "
            "cron= (e.g. '*/5 * * * *')"
        )
    if cron is not None:
        return parse_cron(cron, tz)
    if tz is not None:
        raise InvalidArgument("tz applies to cron= only: every= ticks are in UTC")
    high = v.MAX_DELAY_SECONDS
    return Every(v.seconds(every, "every", 1.0, high, "14 days"))
