"""SQS queue attributes: validation, defaults, and their place in postroom (pure).

``VisibilityTimeout`` is the queue policy's ``visibility_timeout``. A
``RedrivePolicy`` sets the policy's ``max_attempts`` to ``maxReceiveCount`` and
its ``dead_letter`` to the target queue's name; without one, ``max_attempts`` is
:data:`NO_LIMIT`, the most postroom accepts (SQS never dead-letters a queue
without a redrive policy; postroom does after 1,000 receives). The
other attributes are kept as given in ``QueuePolicy.attributes`` (stored with
the policy, so every server process reads them); ``DelaySeconds``,
``ReceiveMessageWaitTimeSeconds``, ``MaximumMessageSize`` and
``RedriveAllowPolicy`` are enforced by the endpoint, ``MessageRetentionPeriod``
and ``Policy`` are stored and returned but not enforced.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...model.message import QueuePolicy
from ...model.names import dead_letter_queue_name
from ...model.validate import MAX_ATTEMPTS
from ._errors import error
from ._fifo import FIFO_ATTRIBUTES, validate_fifo

__all__ = [
    "NO_LIMIT",
    "RedrivePolicy",
    "describe",
    "parse_redrive",
    "policy_fields",
    "queue_arn",
    "queue_from_arn",
    "redrive_allowed",
    "requested_names",
    "validate",
]

NO_LIMIT = MAX_ATTEMPTS  # also SQS's largest maxReceiveCount
ACCOUNT = "000000000000"
TAGS = "postroom.sqs.tags"
# Set on a queue once a RedrivePolicy names it: only such queues look for the
# dead letters of their sources (see ``Call.settle``).
DLQ_MARK = "postroom.sqs.dead-letter-target"

DEFAULTS = {
    "DelaySeconds": "0",
    "ReceiveMessageWaitTimeSeconds": "0",
    "MaximumMessageSize": "262144",
    "MessageRetentionPeriod": "345600",
    "SqsManagedSseEnabled": "false",
}
RANGES = {
    "VisibilityTimeout": (0, 43200),
    "DelaySeconds": (0, 900),
    "ReceiveMessageWaitTimeSeconds": (0, 20),
    "MaximumMessageSize": (1024, 1048576),
    "MessageRetentionPeriod": (60, 1209600),
}
JSON_VALUED = ("RedrivePolicy", "RedriveAllowPolicy", "Policy")
COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)
READ_ONLY = ("QueueArn", *COUNTS, "CreatedTimestamp", "LastModifiedTimestamp")
# The FIFO attributes have values on FIFO queues only (see _fifo.py).
SETTABLE = (*RANGES, *JSON_VALUED, "SqsManagedSseEnabled", *FIFO_ATTRIBUTES)
UNSUPPORTED = ("KmsMasterKeyId", "KmsDataKeyReusePeriodSeconds")


@dataclass(frozen=True, slots=True)
class RedrivePolicy:
    """A parsed ``RedrivePolicy``: the dead letter queue and the receive limit."""

    target: str
    max_receive_count: int


def queue_arn(region: str, queue: str) -> str:
    """The ARN of ``queue`` (account ``000000000000``)."""
    return f"arn:aws:sqs:{region}:{ACCOUNT}:{queue}"


def queue_from_arn(arn: str, what: str = "ARN") -> str:
    """The queue name of an SQS ARN (region and account are not checked)."""
    parts = arn.split(":")
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs" or not parts[5]:
        raise error(
            "InvalidParameterValue",
            f"{what} {arn!r} is not an SQS queue ARN (arn:aws:sqs:REGION:ACCOUNT:NAME)",
        )
    return parts[5]


def _number(name: str, value: str) -> str:
    low, high = RANGES[name]
    if not value.strip().isdigit() or not low <= int(value) <= high:
        raise error(
            "InvalidAttributeValue",
            f"Invalid value for the parameter {name}: use a whole number from "
            f"{low} to {high}",
        )
    return str(int(value))


def _json(name: str, value: str) -> str:
    if value == "":
        return value
    try:
        data = json.loads(value)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise error("InvalidAttributeValue", f"{name} must be a JSON object")
    if name == "RedrivePolicy":
        parse_redrive(value)
    return value


def validate(
    attributes: Mapping[str, Any], *, creating: bool, fifo: bool
) -> dict[str, str]:
    """Check attributes given to CreateQueue or SetQueueAttributes (of a queue
    that is, or is being created as, a FIFO queue when ``fifo``)."""
    out: dict[str, str] = {}
    for name, raw in attributes.items():
        value = str(raw)
        if name in FIFO_ATTRIBUTES:
            out[name] = validate_fifo(name, value, creating=creating, fifo=fifo)
        elif name in RANGES:
            out[name] = _number(name, value)
        elif name in JSON_VALUED:
            out[name] = _json(name, value)
        elif name == "SqsManagedSseEnabled":
            if value.lower() != "false":
                raise error(
                    "InvalidAttributeValue",
                    "postroom does not encrypt messages itself: leave "
                    "SqsManagedSseEnabled false (encrypt the backend's storage)",
                )
            out[name] = "false"
        elif name in UNSUPPORTED or name in READ_ONLY:
            raise error(
                "InvalidAttributeName",
                f"the attribute {name} is not supported here (see docs/sqs.md)",
            )
        else:
            raise error("InvalidAttributeName", f"Unknown Attribute {name}.")
    return out


def parse_redrive(value: str) -> RedrivePolicy | None:
    """A ``RedrivePolicy`` JSON document; ``""`` removes it (``None``)."""
    if not value:
        return None
    try:
        data = json.loads(value)
        target = queue_from_arn(str(data["deadLetterTargetArn"]), "deadLetterTargetArn")
        count = int(data["maxReceiveCount"])
    except (KeyError, TypeError, ValueError, json.JSONDecodeError):
        raise error(
            "InvalidParameterValue",
            "RedrivePolicy needs deadLetterTargetArn (an SQS ARN) and "
            "maxReceiveCount (1 to 1000)",
        ) from None
    if not 1 <= count <= 1000:
        raise error("InvalidParameterValue", "maxReceiveCount must be 1 to 1000")
    return RedrivePolicy(target, count)


def redrive_allowed(allow_policy: str | None, source_arn: str) -> bool:
    """Whether a target's ``RedriveAllowPolicy`` lets ``source_arn`` use it."""
    if not allow_policy:
        return True
    try:
        data = json.loads(allow_policy)
    except json.JSONDecodeError:
        return True
    permission = data.get("redrivePermission", "allowAll")
    if permission == "denyAll":
        return False
    if permission == "byQueue":
        source = queue_from_arn(source_arn)
        allowed = data.get("sourceQueueArns") or []
        return any(queue_from_arn(str(a)) == source for a in allowed)
    return True


def policy_fields(
    current: QueuePolicy,
    stored: Mapping[str, str],
    queue: str,
    *,
    touch: bool = True,
) -> dict[str, Any]:
    """``declare_queue`` arguments for ``stored`` SQS attributes, the rest of
    ``current`` kept. Without a RedrivePolicy, a queue the endpoint created (or
    whose RedrivePolicy is being removed) gets :data:`NO_LIMIT`; a queue declared
    by postroom keeps its own ``max_attempts`` and dead letter name. ``touch``
    sets ``LastModifiedTimestamp``."""
    redrive = parse_redrive(stored.get("RedrivePolicy", ""))
    visibility = stored.get("VisibilityTimeout")
    sqs_managed = "CreatedTimestamp" in stored or "RedrivePolicy" in current.attributes
    if redrive is not None:
        max_attempts, dead_letter = redrive.max_receive_count, redrive.target
    elif sqs_managed:
        max_attempts, dead_letter = NO_LIMIT, dead_letter_queue_name(queue)
    else:
        max_attempts = current.max_attempts
        dead_letter = current.dead_letter or dead_letter_queue_name(queue)
    attributes = dict(stored)
    if touch:
        attributes["LastModifiedTimestamp"] = str(int(time.time()))
    return {
        "max_attempts": max_attempts,
        "visibility_timeout": (
            max(float(visibility), 0.001)
            if visibility is not None
            else current.visibility_timeout
        ),
        "backoff": current.backoff,
        "dead_letter": dead_letter,
        "dedup_window": current.dedup_window,
        "attributes": attributes,
    }


def requested_names(names: Iterable[str]) -> list[str]:
    """The attribute names a GetQueueAttributes call asks for (``All`` expanded)."""
    wanted: list[str] = []
    for name in names:
        if name == "All":
            return [*READ_ONLY, *SETTABLE]
        if name not in READ_ONLY and name not in SETTABLE:
            raise error("InvalidAttributeName", f"Unknown Attribute {name}.")
        wanted.append(name)
    return wanted


def describe(
    policy: QueuePolicy, arn: str, counts: Mapping[str, int], names: Iterable[str]
) -> dict[str, str]:
    """The values of ``names`` for a queue with ``policy`` and message ``counts``."""
    stored = policy.attributes
    values: dict[str, str] = {**DEFAULTS, **{k: str(v) for k, v in counts.items()}}
    values["QueueArn"] = arn
    values["VisibilityTimeout"] = stored.get(
        "VisibilityTimeout", str(round(policy.visibility_timeout))
    )
    values.update({k: v for k, v in stored.items() if k in (*SETTABLE, *READ_ONLY)})
    return {n: values[n] for n in names if values.get(n) not in (None, "")}
