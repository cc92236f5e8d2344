"""SQS FIFO queues over postroom's message groups and dedup keys (pure).

A FIFO queue is a postroom queue whose stored attributes say ``FifoQueue:
true``. ``MessageGroupId`` is the message's postroom group (send order within
it, one message in flight at a time, groups in parallel); the deduplication id
(``MessageDeduplicationId``, or the SHA-256 of the body with
``ContentBasedDeduplication``) is its dedup key, within the queue's dedup window
(5 minutes, as on SQS). With ``DeduplicationScope=messageGroup`` the key is
the hash of the group and the id, so equal ids of two groups do not collide.
A ``SequenceNumber`` is the message id (a ULID: milliseconds, then a counter
within the sending process) read as a 128-bit number.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...model.message import QueuePolicy
from ._errors import error

__all__ = [
    "FIFO_ATTRIBUTES",
    "FifoSend",
    "check_name",
    "fifo_defaults",
    "fifo_send",
    "is_fifo",
    "sequence_number",
    "validate_fifo",
]

FIFO_ATTRIBUTES = (
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
)
# The values each settable FIFO attribute takes; the first is the default.
_CHOICES = {
    "ContentBasedDeduplication": ("false", "true"),
    "DeduplicationScope": ("queue", "messageGroup"),
    "FifoThroughputLimit": ("perQueue", "perMessageGroupId"),
}
_NAME_RULE = (
    "The name of a FIFO queue can only include alphanumeric characters, hyphens, "
    "or underscores, must end with .fifo suffix and be 1 to 80 in length"
)
_NOT_THIS_TYPE = "The request include parameter that is not valid for this queue type."
# Group and deduplication ids: 1 to 128 alphanumeric or punctuation characters.
_TOKEN = re.compile(r"^[!-~]{1,128}$")
_CROCKFORD = {c: i for i, c in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}


def is_fifo(policy: QueuePolicy) -> bool:
    """Whether the queue was created as an SQS FIFO queue."""
    return policy.attributes.get("FifoQueue") == "true"


def check_name(name: str, fifo: bool) -> None:
    """A FIFO queue's name ends in ``.fifo``, and only a FIFO queue's does."""
    if fifo and (not name.endswith(".fifo") or name == ".fifo"):
        raise error("InvalidParameterValue", _NAME_RULE)
    if not fifo and name.endswith(".fifo"):
        raise error(
            "InvalidParameterValue",
            "The name of a queue ending in .fifo requires the FifoQueue attribute "
            "set to true",
        )


def validate_fifo(name: str, value: str, *, creating: bool, fifo: bool) -> str:
    """The stored value of FIFO attribute ``name`` given to CreateQueue or (on a
    queue that is ``fifo``) SetQueueAttributes."""
    if name == "FifoQueue":
        if not creating:
            raise error(
                "InvalidAttributeName",
                "FifoQueue is set when the queue is created and cannot be changed",
            )
        if value.lower() not in ("true", "false"):
            raise error(
                "InvalidAttributeValue",
                "Invalid value for the parameter FifoQueue: use true or false",
            )
        return value.lower()
    if not fifo:
        raise error("InvalidAttributeName", f"Unknown Attribute {name}.")
    choices = _CHOICES[name]
    for choice in choices:
        if value.lower() == choice.lower():
            return choice
    raise error(
        "InvalidAttributeValue",
        f"Invalid value for the parameter {name}: use {' or '.join(choices)}",
    )


def fifo_defaults(given: Mapping[str, str]) -> dict[str, str]:
    """The FIFO attributes a new FIFO queue stores, ``given`` ones first."""
    return {k: given.get(k, choices[0]) for k, choices in _CHOICES.items()}


@dataclass(frozen=True, slots=True)
class FifoSend:
    """A message's FIFO fields: its group, deduplication id and dedup key."""

    group: str
    dedup_id: str
    dedup_key: str


def _token(key: str, value: Any) -> str:
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise error(
            "InvalidParameterValue",
            f"Value {value} for parameter {key} is invalid. Reason: {key} can only "
            "include alphanumeric and punctuation characters. 1 to 128 in length.",
        )
    return value


def fifo_send(
    policy: QueuePolicy, params: Mapping[str, Any], body: str
) -> FifoSend | None:
    """The FIFO fields of a SendMessage (entry); ``None`` on a standard queue.
    Raises SQS's errors for fields missing on a FIFO queue or present on a
    standard one, and for a per-message delay on a FIFO queue."""
    if not is_fifo(policy):
        for key in ("MessageGroupId", "MessageDeduplicationId"):
            if params.get(key) is not None:
                raise error(
                    "InvalidParameterValue",
                    f"Value {params[key]} for parameter {key} is invalid. Reason: "
                    + _NOT_THIS_TYPE,
                )
        return None
    if params.get("MessageGroupId") is None:
        raise error(
            "MissingParameter", "The request must contain the parameter MessageGroupId."
        )
    group = _token("MessageGroupId", params["MessageGroupId"])
    if params.get("DelaySeconds"):
        raise error(
            "InvalidParameterValue",
            f"Value {params['DelaySeconds']} for parameter DelaySeconds is invalid. "
            "Reason: " + _NOT_THIS_TYPE,
        )
    dedup = params.get("MessageDeduplicationId")
    if dedup is not None:
        dedup = _token("MessageDeduplicationId", dedup)
    elif policy.attributes.get("ContentBasedDeduplication") == "true":
        dedup = hashlib.sha256(body.encode("utf-8")).hexdigest()
    else:
        raise error(
            "InvalidParameterValue",
            "The queue should either have ContentBasedDeduplication enabled or "
            "MessageDeduplicationId provided explicitly",
        )
    key = dedup
    if policy.attributes.get("DeduplicationScope") == "messageGroup":
        both = f"{len(group)}:{group}:{dedup}".encode()
        key = "group:" + hashlib.sha256(both).hexdigest()
    return FifoSend(group, dedup, key)


def sequence_number(message_id: str) -> str | None:
    """The SequenceNumber of a message: its ULID id as a number (``None`` for an
    id of another form)."""
    if len(message_id) != 26:
        return None
    value = 0
    for char in message_id.upper():
        digit = _CROCKFORD.get(char)
        if digit is None:
            return None
        value = value * 32 + digit
    return str(value)
