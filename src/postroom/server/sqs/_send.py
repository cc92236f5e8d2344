"""SendMessage and SendMessageBatch."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...model.message import QueuePolicy
from ._attributes import DEFAULTS
from ._call import Call, action
from ._errors import SqsError, error
from ._fifo import FifoSend, fifo_send, sequence_number
from ._md5 import md5_of_attributes, md5_of_body
from ._messages import (
    check_body,
    check_message_attributes,
    message_size,
    send_headers,
)

__all__ = ["batch_entries", "failure", "int_param"]

_ENTRY_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
MAX_BATCH = 10


@dataclass(frozen=True, slots=True)
class _Prepared:
    body: str
    delay: int
    headers: dict[str, str]
    answer: dict[str, str]
    fifo: FifoSend | None = None

    def answer_for(self, message_id: str) -> dict[str, str]:
        """The reply's fields for the message stored (or the first with the same
        deduplication id, within its window)."""
        out = {**self.answer, "MessageId": message_id}
        number = sequence_number(message_id) if self.fifo else None
        if number is not None:
            out["SequenceNumber"] = number
        return out


def int_param(params: dict[str, Any], key: str, low: int, high: int) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not low <= value <= high
    ):
        raise error(
            "InvalidParameterValue",
            f"Value {value} for parameter {key} is invalid. Reason: must be "
            f"between {low} and {high}.",
        )
    return value


def _prepare(
    call: Call, queue: str, policy: QueuePolicy, params: dict[str, Any]
) -> _Prepared:
    body = check_body(params.get("MessageBody"))
    fifo = fifo_send(policy, params, body)
    attributes = check_message_attributes(params.get("MessageAttributes"))
    system = check_message_attributes(
        params.get("MessageSystemAttributes"), system=True
    )
    limit = int(
        policy.attributes.get("MaximumMessageSize", DEFAULTS["MaximumMessageSize"])
    )
    if message_size(body, attributes) > limit:
        raise error(
            "InvalidParameterValue",
            "One or more parameters are invalid. Reason: Message must be shorter "
            f"than {limit} bytes.",
        )
    delay = int_param(params, "DelaySeconds", 0, 900)
    if delay is None or fifo is not None:  # FIFO queues: the queue's delay only
        delay = int(policy.attributes.get("DelaySeconds", "0"))
    answer = {"MD5OfMessageBody": md5_of_body(body)}
    if attributes:
        answer["MD5OfMessageAttributes"] = md5_of_attributes(attributes)
    if system:
        answer["MD5OfMessageSystemAttributes"] = md5_of_attributes(system)
    headers = send_headers(
        queue, attributes, system, call.sender, None if fifo is None else fifo.dedup_id
    )
    return _Prepared(body, delay, headers, answer, fifo)


async def _send_one(call: Call, queue: str, p: _Prepared) -> dict[str, str]:
    fifo = p.fifo
    mid = await call.client.send(
        queue,
        p.body.encode("utf-8"),
        delay=p.delay or None,
        headers=p.headers,
        group=None if fifo is None else fifo.group,
        dedup_key=None if fifo is None else fifo.dedup_key,
    )
    return p.answer_for(mid)


@action("SendMessage", "send")
async def send_message(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Put one message on the queue."""
    name, policy = await call.queue(params)
    return await _send_one(call, name, _prepare(call, name, policy, params))


def failure(entry_id: str, exc: SqsError) -> dict[str, Any]:
    """One ``Failed`` entry of a batch answer."""
    return {
        "Id": entry_id,
        "SenderFault": exc.kind.fault == "Sender",
        "Code": exc.kind.code,
        "Message": exc.message,
    }


def batch_entries(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The entries of a batch call, checked as SQS checks them."""
    entries = params.get("Entries")
    if not isinstance(entries, list) or not entries:
        raise error("EmptyBatchRequest", "There should be at least one entry.")
    if len(entries) > MAX_BATCH:
        raise error(
            "TooManyEntriesInBatchRequest",
            f"Maximum number of entries per request are {MAX_BATCH}. You have sent "
            f"{len(entries)}.",
        )
    ids = []
    for entry in entries:
        entry_id = entry.get("Id") if isinstance(entry, dict) else None
        if not isinstance(entry_id, str) or not _ENTRY_ID.match(entry_id):
            raise error(
                "InvalidBatchEntryId",
                "A batch entry id can only contain alphanumeric characters, "
                "hyphens and underscores. It can be at most 80 letters long.",
            )
        ids.append(entry_id)
    if len(set(ids)) != len(ids):
        raise error(
            "BatchEntryIdsNotDistinct", "Two or more batch entries have the same Id."
        )
    return entries


async def _send_group(
    call: Call, queue: str, group: Sequence[tuple[str, _Prepared]]
) -> list[dict[str, Any]]:
    first = group[0][1]
    bodies = [p.body.encode("utf-8") for _, p in group]
    ids = await call.client.send_many(
        queue, bodies, delay=first.delay or None, headers=first.headers
    )
    return [
        {**p.answer_for(mid), "Id": entry_id}
        for (entry_id, p), mid in zip(group, ids, strict=True)
    ]


@action("SendMessageBatch", "send")
async def send_message_batch(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    """Put up to 10 messages on the queue; entries sharing their delay and
    attributes go in one round trip (on a FIFO queue, one by one in order)."""
    name, policy = await call.queue(params)
    failed: list[dict[str, Any]] = []
    groups: dict[tuple[int, str], list[tuple[str, _Prepared]]] = {}
    successful: list[dict[str, Any]] = []
    for entry in batch_entries(params):
        try:
            prepared = _prepare(call, name, policy, entry)
        except SqsError as exc:
            failed.append(failure(entry["Id"], exc))
            continue
        if prepared.fifo is not None:
            done = await _send_one(call, name, prepared)
            successful.append({**done, "Id": entry["Id"]})
            continue
        key = (prepared.delay, json.dumps(prepared.headers, sort_keys=True))
        groups.setdefault(key, []).append((entry["Id"], prepared))
    for group in groups.values():
        successful.extend(await _send_group(call, name, group))
    return {"Successful": successful, "Failed": failed}
