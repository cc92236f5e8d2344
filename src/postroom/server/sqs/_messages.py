"""SQS messages over postroom messages (pure): what SendMessage stores and what
ReceiveMessage returns.

A message sent through the endpoint is stored with its body as UTF-8 bytes
(``content-type: text/plain; charset=utf-8``) and one header, ``sqs-message``:
compact JSON ``{"q": queue it was sent to, "a": message attributes,
"s": system attributes, "u": sender, "d": deduplication id on a FIFO queue}``
(attributes in wire form, binary values base64). A message sent another way
(postroom's API) shows its headers, apart from ``content-type``, as String
message attributes, and a body that is not UTF-8 as base64 text.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ...model.codec import CONTENT_TYPE
from ...model.message import Delivery, Message
from ._attributes import ACCOUNT
from ._errors import error
from ._fifo import sequence_number
from ._md5 import attribute_value_bytes, md5_of_attributes, md5_of_body

__all__ = [
    "META_HEADER",
    "SYSTEM_ATTRIBUTES",
    "TEXT_TYPE",
    "check_body",
    "check_message_attributes",
    "message_size",
    "origin_queue",
    "render",
    "send_headers",
]

META_HEADER = "sqs-message"
TEXT_TYPE = "text/plain; charset=utf-8"
SYSTEM_ATTRIBUTES = (
    "SenderId",
    "SentTimestamp",
    "ApproximateReceiveCount",
    "ApproximateFirstReceiveTimestamp",
    "AWSTraceHeader",
    "DeadLetterQueueSourceArn",
    "MessageGroupId",
    "MessageDeduplicationId",
    "SequenceNumber",
)
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
# Characters SQS accepts in a body (XML 1.0's): tab, LF, CR, U+0020..U+D7FF,
# U+E000..U+FFFD and the supplementary planes.
_BAD_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_WIRE = ("DataType", "StringValue", "BinaryValue")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def check_body(body: Any) -> str:
    """The body of a SendMessage entry; raises for a missing or invalid one."""
    if not isinstance(body, str) or body == "":
        raise error(
            "MissingParameter", "The request must contain the parameter MessageBody."
        )
    if _BAD_CHAR.search(body):
        raise error(
            "InvalidMessageContents",
            "Invalid characters found in the message body: SQS bodies are XML text "
            "(encode binary data as base64)",
        )
    return body


def _check_attribute(name: str, value: Any) -> None:
    if not _NAME.match(name) or name.startswith(("AWS.", "Amazon.")) or ".." in name:
        raise error(
            "InvalidParameterValue", f"Message attribute name '{name}' is invalid"
        )
    if not isinstance(value, Mapping):
        raise error("InvalidParameterValue", f"Message attribute '{name}' is invalid")
    kind = str(value.get("DataType", ""))
    base = kind.split(".", 1)[0]
    field = "BinaryValue" if base == "Binary" else "StringValue"
    if base not in ("String", "Number", "Binary"):
        raise error(
            "InvalidParameterValue",
            f"The message attribute '{name}' has an invalid message attribute type",
        )
    if value.get("StringListValues") or value.get("BinaryListValues"):
        raise error("InvalidParameterValue", "List attribute values are not supported")
    if not value.get(field):
        raise error(
            "InvalidParameterValue",
            f"The message attribute '{name}' must contain a non-empty message "
            f"attribute value for message attribute type '{base}'.",
        )
    if base == "Number" and not _NUMBER.match(str(value[field])):
        raise error(
            "InvalidParameterValue",
            f"Can't cast the value of message (user) attribute '{name}' to a number.",
        )


def check_message_attributes(
    attributes: Any, *, system: bool = False
) -> dict[str, Any]:
    """Validated message attributes in wire form (``{}`` when none)."""
    if attributes is None:
        return {}
    if not isinstance(attributes, Mapping) or len(attributes) > 10:
        raise error(
            "InvalidParameterValue", "Number of message attributes must be at most 10"
        )
    for name, value in attributes.items():
        if system and name != "AWSTraceHeader":
            raise error(
                "InvalidParameterValue",
                f"Message system attribute name '{name}' is invalid.",
            )
        _check_attribute(str(name), value)
    return {
        str(n): {k: v for k, v in dict(v).items() if k in _WIRE}
        for n, v in attributes.items()
    }


def message_size(body: str, attributes: Mapping[str, Mapping[str, Any]]) -> int:
    """The size SQS compares with ``MaximumMessageSize``."""
    size = len(body.encode("utf-8"))
    for name, value in attributes.items():
        size += len(name.encode()) + len(str(value["DataType"]).encode())
        size += len(attribute_value_bytes(value)[1])
    return size


def send_headers(
    queue: str,
    attributes: Mapping[str, Any],
    system: Mapping[str, Any],
    sender: str,
    dedup_id: str | None = None,
) -> dict[str, str]:
    """The headers of a message sent to ``queue`` (``dedup_id``: its
    deduplication id on a FIFO queue)."""
    meta: dict[str, Any] = {"q": queue}
    if dedup_id is not None:
        meta["d"] = dedup_id
    if attributes:
        meta["a"] = attributes
    if system:
        meta["s"] = system
    if sender:
        meta["u"] = sender
    return {
        CONTENT_TYPE: TEXT_TYPE,
        META_HEADER: json.dumps(meta, separators=(",", ":"), ensure_ascii=False),
    }


def _meta(message: Message) -> dict[str, Any]:
    raw = message.headers.get(META_HEADER)
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def origin_queue(message: Message) -> str | None:
    """The queue a message was first sent to through the endpoint, if known."""
    origin = _meta(message).get("q")
    return origin if isinstance(origin, str) else None


def body_text(body: bytes) -> str:
    """The body as SQS text: UTF-8, else base64."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii")


def _message_attributes(message: Message, meta: Mapping[str, Any]) -> dict[str, Any]:
    if "a" in meta and isinstance(meta["a"], dict):
        return dict(meta["a"])
    if META_HEADER in message.headers:
        return {}
    return {
        name: {"DataType": "String", "StringValue": value}
        for name, value in message.headers.items()
        if name != CONTENT_TYPE and value and _NAME.match(name)
    }


def _selected(names: Iterable[str], wanted: Sequence[str]) -> list[str]:
    if "All" in wanted or ".*" in wanted:
        return list(names)
    out = []
    for name in names:
        for w in wanted:
            if name == w or (w.endswith(".*") and name.startswith(w[:-1])):
                out.append(name)
                break
    return out


def _system(
    delivery: Delivery,
    meta: Mapping[str, Any],
    received_ms: int,
    source_arn: str | None,
) -> dict[str, str]:
    sent = int(delivery.message.enqueued_at.timestamp() * 1000)
    values = {
        "SenderId": str(meta.get("u") or ACCOUNT),
        "SentTimestamp": str(sent),
        "ApproximateReceiveCount": str(delivery.attempts),
        # postroom does not record the first receive: the time of this receive
        # when it is the first, else the time the message was sent.
        "ApproximateFirstReceiveTimestamp": str(
            received_ms if delivery.attempts <= 1 else sent
        ),
    }
    trace = (meta.get("s") or {}).get("AWSTraceHeader")
    if isinstance(trace, dict) and trace.get("StringValue"):
        values["AWSTraceHeader"] = str(trace["StringValue"])
    if source_arn:
        values["DeadLetterQueueSourceArn"] = source_arn
    message = delivery.message
    if message.group is not None:
        values["MessageGroupId"] = message.group
        dedup = meta.get("d") or message.dedup_key
        if dedup:
            values["MessageDeduplicationId"] = str(dedup)
        number = sequence_number(message.id)
        if number is not None:
            values["SequenceNumber"] = number
    return values


def render(
    delivery: Delivery,
    receipt: str,
    *,
    system_names: Sequence[str],
    attribute_names: Sequence[str],
    received_ms: int,
    source_arn: str | None,
) -> dict[str, Any]:
    """One message of a ReceiveMessage answer."""
    meta = _meta(delivery.message)
    body = body_text(delivery.body)
    out: dict[str, Any] = {
        "MessageId": delivery.id,
        "ReceiptHandle": receipt,
        "MD5OfBody": md5_of_body(body),
        "Body": body,
    }
    system = _system(delivery, meta, received_ms, source_arn)
    picked = _selected(system, system_names)
    if picked:
        out["Attributes"] = {n: system[n] for n in picked}
    attributes = _message_attributes(delivery.message, meta)
    chosen = {n: attributes[n] for n in _selected(sorted(attributes), attribute_names)}
    if chosen:
        out["MessageAttributes"] = chosen
        out["MD5OfMessageAttributes"] = md5_of_attributes(chosen)
    return out
