from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom import DecodeError, Delivery, Message, SerializationError
from postroom.model import codec
from postroom.model.codec import body_to_json, decode_body, encode_body


class Job(pydantic.BaseModel):
    image: str
    sizes: list[int] = [64]


@dataclasses.dataclass
class DJob:
    image: str


def delivery(body: bytes) -> Delivery:
    now = datetime.now(UTC)
    msg = Message("id1", "q", body, {}, now, now, 1)
    return Delivery(msg, "r", now)


def test_encode_json_bytes_models_dataclasses() -> None:
    assert encode_body({"a": 1}) == (b'{"a":1}', "application/json")
    assert encode_body(b"\x00") == (b"\x00", "application/octet-stream")
    assert encode_body(Job(image="x"))[0] == b'{"image":"x","sizes":[64]}'
    assert encode_body(DJob("y"))[0] == b'{"image":"y"}'


def test_encode_unserialisable_names_the_fix() -> None:
    with pytest.raises(SerializationError, match="pydantic model"):
        encode_body(object())


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (Job, Job(image="cat.png", sizes=[64])),
        (DJob, DJob(image="cat.png")),
        (dict, {"image": "cat.png"}),
        (dict[str, Any], {"image": "cat.png"}),
        (None, {"image": "cat.png"}),
        (bytes, b'{"image":"cat.png"}'),
        (str, '{"image":"cat.png"}'),
    ],
)
def test_decode_into_annotations(annotation: Any, expected: Any) -> None:
    assert decode_body(delivery(b'{"image":"cat.png"}'), annotation) == expected


def test_decode_message_and_delivery() -> None:
    d = delivery(b"{}")
    assert decode_body(d, Message) is d.message
    assert decode_body(d, Delivery) is d


@pytest.mark.parametrize("annotation", [Job, DJob, dict, None])
def test_decode_failure_is_decode_error(annotation: Any) -> None:
    with pytest.raises(DecodeError, match="id1"):
        decode_body(delivery(b"\xff not json"), annotation)


def test_decode_validation_failure_is_decode_error() -> None:
    with pytest.raises(DecodeError, match="Job"):
        decode_body(delivery(b'{"sizes": "x"}'), Job)


def test_body_to_json_text_or_base64() -> None:
    assert body_to_json(b"hi") == {"body": "hi"}
    assert body_to_json(b"\xff") == {"body_base64": "/w=="}


def test_error_info_traceback_keeps_frames_and_causes_without_carets() -> None:
    import traceback

    from postroom.model.message import ErrorInfo

    def inner() -> None:
        raise ZeroDivisionError("inner")

    try:
        try:
            inner()
        except ZeroDivisionError as exc:
            raise ValueError("outer") from exc
    except ValueError as exc:
        info = ErrorInfo.from_exception(exc)
        full = "".join(traceback.format_exception(exc))
    assert info.type == "ValueError" and info.message == "outer"
    assert "in inner" in info.traceback and "direct cause" in info.traceback
    assert info.traceback.splitlines() == [
        line
        for line in full.splitlines()
        if not line.strip() or set(line.strip()) - {"^", "~"}
    ]


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_JSON)
def test_the_bodys_one_shot_encoder_encodes_as_the_json_encoder(value: Any) -> None:
    """Same text, or the same refusal (NaN, infinity, a lone surrogate), as
    ``JSONEncoder.encode`` with the body's options."""
    try:
        expected: object = codec._ENCODER.encode(value).encode("utf-8")
    except ValueError as exc:  # UnicodeEncodeError is one
        expected = type(exc)
    try:
        got: object = codec._ENCODE_BODY(value).encode("utf-8")
    except ValueError as exc:
        got = type(exc)
    assert got == expected


def test_a_cyclic_body_is_refused() -> None:
    body: list[Any] = []
    body.append(body)
    with pytest.raises(SerializationError):
        encode_body(body)
