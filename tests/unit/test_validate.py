"""The argument checks (model/validate.py) and the storable error texts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest

from postroom import ErrorInfo, InvalidArgument
from postroom.cli._common import safe
from postroom.model import validate as v

if TYPE_CHECKING:
    from collections.abc import Awaitable


def test_invalid_argument_is_a_configuration_and_value_error() -> None:
    import postroom

    assert issubclass(InvalidArgument, postroom.ConfigurationError)
    assert issubclass(InvalidArgument, ValueError)


@pytest.mark.parametrize(
    "name", ["images.resize", "a", "é" * 100, "orders:eu", "x" * 200, "日本語.キュー"]
)
def test_valid_names_pass(name: str) -> None:
    assert v.name(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "is empty"),
        ("x" * 201, "is 201 bytes long"),
        ("é" * 101, "is 202 bytes long"),
        ("a b", "whitespace"),
        ("a\x00", "control or format"),
        ("a\x1b", "control or format"),
        ("a\x9b", "control or format"),
        ("a\u202e", "control or format"),
        ("a\ud800", "lone surrogate"),
        (5, "must be a name string, got a int"),
    ],
)
def test_invalid_names_are_refused_with_the_rule(name: object, problem: str) -> None:
    with pytest.raises(InvalidArgument, match=problem) as info:
        v.name(name, "topic")
    assert str(info.value).startswith("topic")


def test_subscription_parts_refuse_a_colon() -> None:
    assert v.subscription_part("orders.eu", "topic") == "orders.eu"
    with pytest.raises(InvalidArgument, match="':' is not allowed"):
        v.subscription_part("orders:eu", "topic")


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, -1, 1e12, 10**400, True, "1", None]
)
def test_delays_must_be_finite_and_in_range(value: object) -> None:
    if value is None:
        assert v.delay(value) is None
        return
    with pytest.raises(InvalidArgument, match="delay"):
        v.delay(value)


def test_durations_accept_numbers_and_timedeltas() -> None:
    assert v.delay(timedelta(days=14)) == 14 * 86400
    assert v.lease(0.001) == 0.001
    assert v.wait(timedelta(seconds=300)) == 300
    with pytest.raises(InvalidArgument, match=r"between 0\.001 and 43200 seconds"):
        v.lease(0)
    with pytest.raises(InvalidArgument, match="12 hours"):
        v.lease(timedelta(hours=12, seconds=1))


def test_counts_refuse_bools_floats_and_out_of_range() -> None:
    assert v.attempts(1000) == 1000
    for bad in (0, 1001, 10**12, True, 5.0, None):
        with pytest.raises(InvalidArgument, match="max_attempts"):
            v.attempts(bad)


def test_headers_are_never_stringified() -> None:
    assert v.headers({"a": "1", "b": ""}) == {"a": "1", "b": ""}
    for bad, match in [
        ({"k": None}, "must be a str, got a NoneType"),
        ({"k": b"v"}, "must be a str, got a bytes"),
        ([("k", "v")], "must be a mapping"),
        ({"k": "\x00"}, "NUL"),
        ({f"h{i}": "" for i in range(101)}, "at most 100"),
        ({"k": "v" * (64 * 1024)}, "bytes of names and values"),
    ]:
        with pytest.raises(InvalidArgument, match=match):
            v.headers(bad)


def test_error_texts_are_storable_and_bounded() -> None:
    info = ErrorInfo("T\x00", "a\x00b\ud800c" + "m" * 10_000, "t" * 40_000 + "END")
    assert info.type == "T\ufffd"
    assert info.message.startswith("a\ufffdb\ufffdc") and len(info.message) == 8192
    assert info.traceback.endswith("END") and len(info.traceback) == 32 * 1024
    assert ErrorInfo("T", "plain").message == "plain"


def test_terminal_text_escapes_control_characters() -> None:
    assert safe("plain é 日本") == "plain é 日本"
    assert safe("a\x1b[31mb\x07\x9b\u202e") == "a\\x1b[31mb\\x07\\x9b\\u202e"
    assert safe("l1\nl2\tx") == "l1\\x0al2\\x09x"
    assert safe("l1\nl2\tx", lines=True) == "l1\nl2\tx"


def test_retry_signal_refuses_a_delay_out_of_range() -> None:
    import postroom

    assert postroom.Retry(delay=timedelta(days=14)).delay == timedelta(days=14)
    for bad in (1e12, math.inf, math.nan, -1):
        with pytest.raises(InvalidArgument, match="Retry delay must be between 0"):
            postroom.Retry(delay=bad)


def test_worker_and_handler_options_are_checked() -> None:
    import postroom

    app = postroom.App("memory://validate-worker")
    with pytest.raises(InvalidArgument, match="concurrency must be from 1 to 10,000"):
        app.handler("jobs", concurrency=0)
    with pytest.raises(InvalidArgument, match="timeout must be between"):
        app.handler("jobs", timeout=math.inf)
    with pytest.raises(InvalidArgument, match="contains ':'"):
        app.subscriber("orders:eu", subscription="audit")

    @app.handler("jobs")
    def handle(body: dict[str, int]) -> None: ...

    for grace in (math.nan, math.inf, -1):
        with pytest.raises(InvalidArgument, match="grace must be between 0"):
            postroom.Worker(app, grace=grace)
    with pytest.raises(InvalidArgument, match="concurrency"):
        postroom.Worker(app, concurrency=10**9)


@pytest.mark.parametrize("url", [5, b"sqlite:///x.db", ["memory://"]])
def test_a_url_that_is_not_a_string_is_an_invalid_argument(url: Any) -> None:
    import postroom

    for build in (postroom.connect, postroom.connect_async, postroom.App):
        with pytest.raises(InvalidArgument, match="url must be a string"):
            build(url)


def test_a_handler_that_is_not_a_function_is_an_invalid_argument() -> None:
    import postroom

    app = postroom.App("memory://")
    not_a_function: Any = 5
    with pytest.raises(InvalidArgument, match="a handler must be a function"):
        app.handler("jobs")(not_a_function)
    with pytest.raises(InvalidArgument, match="has no readable signature"):
        app.handler("jobs")(dict)
    assert app.handlers == {}


@dataclass
class _Job:
    n: int


def test_a_handler_body_type_resolves_alone_or_is_refused() -> None:
    import postroom

    app = postroom.App("memory://")

    # the return annotation names a type imported only for type checkers
    @app.handler("ok")
    def ok(job: _Job) -> Awaitable[None]: ...

    assert app.handlers["ok"].body_type is _Job
    with pytest.raises(InvalidArgument, match="'NoSuchType' of handler"):

        @app.handler("bad")
        def bad(job: NoSuchType) -> None: ...  # noqa: F821

    assert "bad" not in app.handlers
