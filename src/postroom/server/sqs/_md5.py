"""The MD5 digests SQS returns, computed as SQS computes them (pure).

``MD5OfMessageBody`` is the hex MD5 of the body's UTF-8 bytes.
``MD5OfMessageAttributes`` (and ``MD5OfMessageSystemAttributes``) hash the
attributes sorted by name, each as: the name's length (4 bytes, big-endian) and
UTF-8 bytes, the data type's length and bytes, one transport byte (1 for String
and Number types, 2 for Binary), then the value's length and bytes (UTF-8 for
strings, raw for binary). The Java, Go and .NET SDKs recompute both and refuse
a mismatch.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from collections.abc import Mapping
from typing import Any

__all__ = ["attribute_value_bytes", "md5_of_attributes", "md5_of_body"]


def md5_of_body(body: str) -> str:
    """``MD5OfMessageBody``."""
    return hashlib.md5(body.encode("utf-8"), usedforsecurity=False).hexdigest()


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def attribute_value_bytes(value: Mapping[str, Any]) -> tuple[int, bytes]:
    """The transport byte and the value bytes of one attribute (wire form:
    ``StringValue`` text or ``BinaryValue`` base64)."""
    if str(value.get("DataType", "")).startswith("Binary"):
        return 2, base64.b64decode(value.get("BinaryValue", ""))
    return 1, str(value.get("StringValue", "")).encode("utf-8")


def md5_of_attributes(attributes: Mapping[str, Mapping[str, Any]]) -> str:
    """``MD5OfMessageAttributes`` of attributes in wire form."""
    digest = hashlib.md5(usedforsecurity=False)
    for name in sorted(attributes):
        value = attributes[name]
        transport, data = attribute_value_bytes(value)
        digest.update(_field(name.encode("utf-8")))
        digest.update(_field(str(value["DataType"]).encode("utf-8")))
        digest.update(bytes([transport]))
        digest.update(_field(data))
    return digest.hexdigest()
