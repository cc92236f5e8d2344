"""Encoding bodies to bytes and decoding them into handler types (no pickle)."""

from __future__ import annotations

import dataclasses
import functools
import json
import json.encoder
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import pydantic
import pydantic_core

from .errors import DecodeError, InvalidArgument, SerializationError
from .ids import new_id
from .message import Delivery, Message, body_to_json, from_ms  # re-exported
from .slots import new_message
from .validate import MAX_BODY_BYTES, MAX_BODY_DEPTH

__all__ = [
    "CONTENT_TYPE",
    "PreparedSend",
    "body_to_json",
    "build_message",
    "check_body_size",
    "decode_body",
    "encode_body",
    "one_shot",
]

CONTENT_TYPE = "content-type"
JSON_TYPE = "application/json"
BYTES_TYPE = "application/octet-stream"


def _json_default(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def one_shot(encoder: json.JSONEncoder, sample: Any) -> Callable[[Any], str]:
    """``encoder.encode`` without the C encoder that ``JSONEncoder.encode`` makes
    anew on every call (half the cost of a small body), where the C module has
    one; checked against ``encoder.encode(sample)`` once. Cycles are not looked
    for: a cyclic value fails as a ``RecursionError``, as a too deep one does."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C module
        return encoder.encode
    strings = (
        json.encoder.encode_basestring_ascii
        if encoder.ensure_ascii
        else json.encoder.encode_basestring
    )
    try:
        # markers (None: no cycle check), default, the string encoder, indent,
        # separators, sort_keys, skipkeys, allow_nan
        one = make(
            None,
            encoder.default,
            strings,
            None,
            encoder.key_separator,
            encoder.item_separator,
            encoder.sort_keys,
            encoder.skipkeys,
            encoder.allow_nan,
        )
        if "".join(one(sample, 0)) != encoder.encode(sample):
            return encoder.encode
    except TypeError:  # another signature
        return encoder.encode
    return lambda value: "".join(one(value, 0))


# One encoder for every body: json.dumps with options builds a new one per call,
# which cost more than encoding a small body (measured: 2.7 us vs 1.1 us). NaN and
# infinity are refused (they are not JSON: other languages' parsers fail on them);
# text stays UTF-8 so that a lone surrogate fails to encode instead of passing as
# a "\ud800" escape that strict JSON parsers refuse.
_BUILTIN_JSON = frozenset({dict, list, str, int, float, bool, type(None)})
_ENCODER = json.JSONEncoder(
    separators=(",", ":"),
    default=_json_default,
    allow_nan=False,
    ensure_ascii=False,
)
_ENCODE_BODY = one_shot(_ENCODER, {"t": [1.5, None, True], "é": "\n"})

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}.__getitem__


def _depth(data: str) -> int:
    """How deep arrays and objects nest in a JSON text."""
    if data.count("[") + data.count("{") <= MAX_BODY_DEPTH:
        return 0  # cheap: fewer brackets than the limit cannot nest deeper
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", data))
    return max(accumulate(map(_STEP, brackets)), default=0)


def _cannot_encode(body: Any, exc: BaseException) -> SerializationError:
    return SerializationError(
        f"cannot encode body (a {type(body).__name__}) as a message body ({exc}): "
        "send bytes, a JSON-able value (no NaN or infinity, valid Unicode text), "
        "a dataclass or a pydantic model"
    )


def _json_bytes(body: Any) -> bytes:
    try:
        # A built-in JSON type is no model (and the check would import
        # pydantic's BaseModel on the first send: 30 ms).
        if type(body) not in _BUILTIN_JSON and isinstance(body, pydantic.BaseModel):
            data = body.model_dump_json()
        else:
            data = _ENCODE_BODY(body)
        raw = data.encode("utf-8")
    except RecursionError as exc:
        raise SerializationError(
            f"body nests too deep to encode: at most {MAX_BODY_DEPTH} levels of "
            "arrays and objects are allowed"
        ) from exc
    except (TypeError, ValueError, pydantic_core.PydanticSerializationError) as exc:
        raise _cannot_encode(body, exc) from exc
    if _depth(data) > MAX_BODY_DEPTH:
        raise SerializationError(
            f"body nests {_depth(data)} levels deep: at most {MAX_BODY_DEPTH} levels "
            "of arrays and objects are allowed"
        )
    return raw


def check_body_size(size: int) -> None:
    """Refuse a body over :data:`~postroom.model.validate.MAX_BODY_BYTES`."""
    if size > MAX_BODY_BYTES:
        raise InvalidArgument(
            f"body is {size:,} bytes once encoded: at most {MAX_BODY_BYTES:,} bytes "
            "(256 KiB) are allowed; store large data elsewhere (a file, an object "
            "store) and send its address"
        )


def encode_body(body: Any) -> tuple[bytes, str]:
    """Encode a body to bytes and name its content type.

    ``bytes`` pass as they are; pydantic models, dataclasses and JSON-able values are
    encoded as compact JSON (UTF-8, nested at most 100 deep, without NaN or
    infinity). Either way the result is at most 256 KiB.
    """
    if isinstance(body, (bytes, bytearray, memoryview)):
        raw, kind = bytes(body), BYTES_TYPE
    else:
        raw, kind = _json_bytes(body), JSON_TYPE
    check_body_size(len(raw))
    return raw, kind


def _load_json(message: Message) -> Any:
    try:
        return json.loads(message.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DecodeError(
            f"message {message.id}: body is not valid JSON: {exc}"
        ) from exc


@functools.lru_cache(maxsize=256)
def _cached_adapter(annotation: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(annotation)


def _adapter(annotation: Any) -> pydantic.TypeAdapter[Any]:
    """A TypeAdapter for ``annotation``, built once per type (building one costs
    far more than validating a small body)."""
    try:
        return _cached_adapter(annotation)
    except TypeError:  # unhashable annotation
        return pydantic.TypeAdapter(annotation)


def decode_body(delivery: Delivery, annotation: Any) -> Any:
    """Decode a delivery's body into ``annotation`` (the handler's parameter type).

    Supported: ``Delivery``, ``Message``, ``bytes``, ``str``, ``Any``/missing (JSON
    value), pydantic models, dataclasses and any type pydantic can validate
    (``dict``, ``list[int]``, ...). Failures raise :class:`DecodeError`.
    """
    message = delivery.message
    if annotation is Delivery:
        return delivery
    if annotation is Message:
        return message
    if annotation is bytes:
        return message.body
    if annotation is str:
        try:
            return message.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(
                f"message {message.id}: body is not UTF-8: {exc}"
            ) from exc
    if annotation is None or annotation is Any:
        return _load_json(message)
    try:
        if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
            return annotation.model_validate_json(message.body)
        return _adapter(annotation).validate_json(message.body)
    except pydantic.ValidationError as exc:
        raise DecodeError(
            f"message {message.id}: body does not validate as "
            f"{getattr(annotation, '__name__', annotation)}: {exc}"
        ) from exc


@dataclass(frozen=True, slots=True)
class PreparedSend:
    """One send made ready by the client (its queue exists, its message built):
    what a backend stores, and the queue's dedup window in milliseconds."""

    message: Message
    dedup_window_ms: int


def build_message(
    queue: str,
    body: Any,
    *,
    now: int,
    delay_ms: int = 0,
    headers: Mapping[str, str] | None = None,
    dedup_key: str | None = None,
    message_id: str | None = None,
    group: str | None = None,
    priority: int = 0,
) -> Message:
    """The message of one send, before it is stored: ``body`` encoded (its
    content type in the headers), visible ``delay_ms`` after ``now`` (ms)."""
    data, content_type = encode_body(body)
    hdrs = {CONTENT_TYPE: content_type}
    if headers:
        hdrs.update(headers)
    enqueued_at = from_ms(now)
    return new_message(
        message_id or new_id(),
        queue,
        data,
        hdrs,
        enqueued_at,
        from_ms(now + delay_ms) if delay_ms else enqueued_at,
        0,
        dedup_key,
        0,
        group,
        priority,
    )
