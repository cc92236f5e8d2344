"""Generated arguments for the public client calls: valid values (which must
work) mixed with careless and hostile ones (which must be refused with a
PostroomError). Each strategy draws ``(value, valid)``: ``valid`` is True only
for values every backend must accept."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from hypothesis import strategies as st

Drawn = tuple[Any, bool]


def _deep(levels: int) -> Any:
    """Arrays nested ``levels`` deep: ``_deep(2) == [[]]``."""
    body: Any = []
    for _ in range(levels - 1):
        body = [body]
    return body


def _valid(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Drawn]:
    return strategy.map(lambda v: (v, True))


def _either(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Drawn]:
    return strategy.map(lambda v: (v, False))


# -- names -------------------------------------------------------------------------

GOOD_NAMES = st.from_regex(r"[a-z][a-z0-9._-]{0,40}", fullmatch=True)
HOSTILE_NAMES = st.sampled_from(
    [
        "",
        " ",
        "a b",
        "q\x00",
        "\x1b[31mred",
        "tab\tname",
        "x" * 201,
        "é" * 101,  # 202 bytes
        "\ud800",
        "rtl\u202eevil",
        "zero\u200bwidth",
    ]
)
NOT_STRINGS = st.sampled_from([None, 5, 1.5, b"q", ["q"], {"q": 1}])

names = st.one_of(
    _valid(GOOD_NAMES),
    _either(st.text(max_size=60)),
    _either(HOSTILE_NAMES),
    _either(NOT_STRINGS),
)
# Topic and subscription names: ':' is refused in them.
topic_names = st.one_of(
    _valid(GOOD_NAMES),
    _either(GOOD_NAMES.map(lambda n: n + ":x")),
    _either(HOSTILE_NAMES),
    _either(NOT_STRINGS),
)

# -- bodies ------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
HOSTILE_BODIES = st.sampled_from(
    [
        math.nan,
        math.inf,
        {"v": math.nan},
        [1, -math.inf],
        "\ud800",
        {"k\udc00": 1},
        _deep(101),
        _deep(1000),
        b"x" * (256 * 1024 + 1),
        "y" * (256 * 1024),  # 2 quotes over the limit once encoded
        object(),
    ]
)
bodies = st.one_of(
    _valid(JSON),
    _valid(st.binary(max_size=300)),
    _valid(st.just(_deep(100))),
    _valid(st.just(b"z" * (256 * 1024))),
    _either(HOSTILE_BODIES),
)

# -- headers -----------------------------------------------------------------------

GOOD_HEADERS = st.dictionaries(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True),
    st.text(max_size=40).filter(lambda s: "\x00" not in s),
    max_size=5,
)
HOSTILE_HEADERS = st.sampled_from(
    [
        [("k", "v")],
        "k=v",
        {"k": None},
        {"k": b"v"},
        {"k": 1},
        {1: "v"},
        {"": "v"},
        {"k\x00": "v"},
        {"k": "v\x00"},
        {"k k": "v"},
        {"k": "\ud800"},
        {f"h{i}": "v" for i in range(101)},
        {"big": "v" * (64 * 1024)},
    ]
)
headers = st.one_of(
    _valid(st.none()),
    _valid(GOOD_HEADERS),
    _either(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3)),
    _either(HOSTILE_HEADERS),
)

# -- durations ---------------------------------------------------------------------

HOSTILE_NUMBERS = [
    math.nan,
    math.inf,
    -math.inf,
    -1,
    -0.5,
    1e12,
    10**30,
    True,
    "1",
    None,
    timedelta(days=10**6),
    timedelta(seconds=-1),
]
# Delays that keep a message receivable at once, and long valid ones.
delays_now = st.one_of(
    _valid(st.sampled_from([None, 0, 0.0, timedelta(0)])),
    _either(st.sampled_from([x for x in HOSTILE_NUMBERS if x is not None])),
)
delays_any = st.one_of(
    _valid(st.sampled_from([None, 0, 60, 3600.5, 14 * 86400, timedelta(days=14)])),
    _either(st.sampled_from([14 * 86400 + 1, *HOSTILE_NUMBERS])),
)
leases = st.one_of(
    _valid(st.floats(min_value=1.0, max_value=12 * 3600)),
    _valid(st.sampled_from([0.001, 12 * 3600, timedelta(hours=12)])),
    _either(st.sampled_from([0, 0.0, 0.0001, 12 * 3600 + 1, *HOSTILE_NUMBERS])),
)
optional_leases = st.one_of(_valid(st.none()), leases)
waits = st.one_of(
    _valid(st.sampled_from([0, 0.0, 0.01, 300, timedelta(seconds=1)])),
    _either(st.sampled_from([300.5, *HOSTILE_NUMBERS])),
)


def counts(low: int, high: int) -> st.SearchStrategy[Drawn]:
    """Whole numbers in ``low..high`` (valid), and around and outside them."""
    return st.one_of(
        _valid(st.integers(min_value=low, max_value=min(high, low + 20))),
        _valid(st.just(high)),
        _either(
            st.sampled_from(
                [low - 1, -1, high + 1, 10**12, 2**63, 1.0, math.nan, "3", None, True]
            )
        ),
    )


max_attempts = counts(1, 1000)
limits = counts(1, 1_000_000)
optional_limits = st.one_of(_valid(st.none()), limits)
max_messages = counts(1, 10_000)
rates = st.one_of(
    _valid(st.none()),
    _valid(st.floats(min_value=1000.0, max_value=1_000_000.0)),
    _either(st.sampled_from([0, -1.0, math.nan, math.inf, 1e7, "5", True])),
)
reasons = st.one_of(
    _valid(st.none()),
    _valid(st.sampled_from(["failed", "lease_expired", "rejected", "timeout"])),
    _either(st.sampled_from(["bored", "", 1, "\x00"])),
)
texts = st.one_of(
    _valid(st.none()),
    _valid(st.text(min_size=1, max_size=30).filter(lambda s: "\x00" not in s)),
    _either(st.sampled_from(["", "\x00", "\ud800", "k" * 1025, 5, b"k"])),
)

# -- policies ----------------------------------------------------------------------

GOOD_BACKOFF = st.fixed_dictionaries(
    {
        "initial": st.floats(min_value=0, max_value=60),
        "factor": st.floats(min_value=1, max_value=10),
        "max": st.floats(min_value=0, max_value=3600),
        "jitter": st.booleans(),
    }
)
HOSTILE_BACKOFF = st.sampled_from(
    [
        {"initial": math.nan},
        {"initial": math.inf},
        {"max": math.nan},
        {"max": 1e12},
        {"factor": math.inf},
        {"factor": 0.5},
        {"factor": 1e6},
        {"initial": -1},
        {"jitter": "yes"},
        {"initial": "1"},
    ]
)
backoffs = st.one_of(_valid(st.none()), _valid(GOOD_BACKOFF), _either(HOSTILE_BACKOFF))
dedup_windows = st.one_of(
    _valid(st.sampled_from([0, 1.5, 300, 14 * 86400, timedelta(minutes=5)])),
    _either(st.sampled_from([14 * 86400 + 1, *HOSTILE_NUMBERS])),
)

# -- order (groups, priorities, rate limits) ---------------------------------------

groups = st.one_of(
    _valid(st.none()),
    _valid(GOOD_NAMES),
    _either(HOSTILE_NAMES),
    _either(NOT_STRINGS.filter(lambda v: v is not None)),
)
priorities = st.one_of(
    _valid(st.integers(min_value=0, max_value=9)),
    _either(st.sampled_from([-1, 10, 2**63, 1.0, 5.5, math.nan, "9", None, True])),
)
rate_limits = st.one_of(
    _valid(st.none()),
    _valid(st.floats(min_value=0.001, max_value=1_000_000.0)),
    _either(st.sampled_from([0, 0.0009, -1.0, math.nan, math.inf, 1e7, "5", True])),
    _either(st.just(timedelta(seconds=1))),
)
