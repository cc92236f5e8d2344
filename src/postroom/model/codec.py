"""Encoding bodies to bytes and decoding them into handler types (no pickle)."""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
from typing import Any, get_origin

import pydantic

from .errors import DecodeError, SerializationError
from .message import Delivery, Message

__all__ = ["CONTENT_TYPE", "body_to_json", "decode_body", "encode_body"]

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


# One encoder for every body: json.dumps with options builds a new one per call,
# which cost more than encoding a small body (measured: 2.7 us vs 1.1 us).
_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_json_default)


def encode_body(body: Any) -> tuple[bytes, str]:
    """Encode a body to bytes and name its content type.

    ``bytes`` pass as they are; pydantic models, dataclasses and JSON-able values are
    encoded as compact JSON.
    """
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body), BYTES_TYPE
    if isinstance(body, pydantic.BaseModel):
        return body.model_dump_json().encode(), JSON_TYPE
    try:
        data = _ENCODER.encode(body)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"cannot encode a {type(body).__name__} as a message body ({exc}): send "
            "bytes, a JSON-able value, a dataclass or a pydantic model"
        ) from exc
    return data.encode(), JSON_TYPE


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
        if annotation is dict or get_origin(annotation) is dict:
            data = _load_json(message)
            return _adapter(annotation).validate_python(data)
        return _adapter(annotation).validate_json(message.body)
    except pydantic.ValidationError as exc:
        raise DecodeError(
            f"message {message.id}: body does not validate as "
            f"{getattr(annotation, '__name__', annotation)}: {exc}"
        ) from exc


def body_to_json(body: bytes) -> dict[str, Any]:
    """A body for JSON documents: ``{"body": text}`` or ``{"body_base64": ...}``."""
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(body).decode("ascii")}
